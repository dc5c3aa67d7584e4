-- Describes the dltrain extension installed in the current database, one
-- line per property, in a form that does not depend on OIDs, xids or the
-- path that led to it (test/sh/upgrade.sh diffs an updated database against a
-- fresh one).  pg_dump --schema-only prints only CREATE EXTENSION for an
-- extension, never its members, so the catalogs are read directly.
--
-- ACLs: NULL means "the default" (acldefault), and a column's NULL or empty
-- ACL means "none"; both are written out so that a REVOKE that leaves the
-- default compares equal to never granting.  pg_init_privs (what pg_dump
-- compares against to dump ACL changes) likewise.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' | '
\pset null '<null>'
SET search_path = pg_catalog;
SET extra_float_digits = 3;

CREATE TEMP VIEW ext AS SELECT oid, extowner FROM pg_extension WHERE extname = 'dltrain';
CREATE TEMP VIEW ns AS SELECT oid FROM pg_namespace WHERE nspname = 'dltrain';
-- every member object (deptype 'e'), and the sub-objects that hang off them
CREATE TEMP VIEW members AS
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e';

-- the extension itself: version, schema, configuration tables by name
SELECT 'extension', e.extname, e.extversion, e.extrelocatable, e.extnamespace::regnamespace,
       e.extowner::regrole,
       (SELECT string_agg(c::regclass::text || '=' || coalesce(w, ''), ', ' ORDER BY c::regclass::text)
        FROM unnest(e.extconfig, e.extcondition) AS u(c, w))
FROM pg_extension e WHERE e.extname = 'dltrain';

-- member objects
SELECT 'member', pg_describe_object(classid, objid, 0) FROM members ORDER BY 2;

-- the schema
SELECT 'schema', n.nspname, n.nspowner::regrole, coalesce(n.nspacl, acldefault('n', n.nspowner))
FROM pg_namespace n, ns WHERE n.oid = ns.oid;

-- functions, procedures and aggregates: everything that defines one
SELECT 'function', p.oid::regprocedure::text, p.prokind, l.lanname, p.provolatile, p.proparallel,
       p.proisstrict, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proretset,
       p.provariadic::regtype, p.prosupport, pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid), replace(p.prosrc, E'\n', '\n'), p.probin, p.proconfig, p.proowner::regrole,
       coalesce(p.proacl, acldefault('f', p.proowner))
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, ns
WHERE p.pronamespace = ns.oid ORDER BY 2;

SELECT 'aggregate', a.aggfnoid::regprocedure::text, a.aggkind, a.aggnumdirectargs,
       a.aggtransfn::oid::regprocedure, a.aggfinalfn::oid::regprocedure,
       a.aggcombinefn::oid::regprocedure, a.aggserialfn::oid::regprocedure,
       a.aggdeserialfn::oid::regprocedure, a.aggmtransfn::oid::regprocedure,
       a.aggminvtransfn::oid::regprocedure, a.aggmfinalfn::oid::regprocedure,
       a.aggfinalextra, a.aggmfinalextra, a.aggfinalmodify, a.aggmfinalmodify,
       a.aggsortop::regoperator, a.aggtranstype::regtype, a.aggtransspace,
       a.aggmtranstype::regtype, a.aggmtransspace, a.agginitval, a.aggminitval
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid, ns
WHERE p.pronamespace = ns.oid ORDER BY 2;

-- types
SELECT 'type', t.oid::regtype::text, t.typtype, t.typlen, t.typbyval, t.typcategory, t.typispreferred,
       t.typdelim, t.typelem::regtype, t.typarray::regtype,
       t.typinput::oid::regprocedure, t.typoutput::oid::regprocedure,
       t.typreceive::oid::regprocedure, t.typsend::oid::regprocedure,
       t.typmodin::oid::regprocedure, t.typmodout::oid::regprocedure,
       t.typanalyze::oid::regprocedure, t.typsubscript::oid::regprocedure,
       t.typalign, t.typstorage, t.typnotnull, t.typbasetype::regtype, t.typtypmod,
       t.typcollation, t.typdefault, t.typowner::regrole, coalesce(t.typacl, acldefault('T', t.typowner))
FROM pg_type t, ns WHERE t.typnamespace = ns.oid ORDER BY 2;

-- relations: tables, views, sequences, indexes
SELECT 'relation', c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
       c.relreplident, c.reloptions, c.relispartition, c.relowner::regrole,
       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)),
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
FROM pg_class c, ns WHERE c.relnamespace = ns.oid ORDER BY 2;

-- columns, in order: name, type, nullability, default, identity, generation,
-- collation, storage, privileges
SELECT 'column', c.relname, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname,
       format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
       a.attidentity, a.attgenerated, a.attcollation::regcollation, a.attstorage, a.attcompression,
       a.attstattarget,
       -- (this build of PostgreSQL keeps a changing pg_attver in attoptions)
       array(SELECT o FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\_attver=%'),
       CASE WHEN a.attacl IS NULL OR cardinality(a.attacl) = 0 THEN '{}'::aclitem[] ELSE a.attacl END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN ns ON c.relnamespace = ns.oid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY 2, 3;

-- constraints, indexes, triggers, rules, policies
SELECT 'constraint', co.conrelid::regclass::text, co.conname, co.contype, co.condeferrable, co.condeferred,
       co.convalidated, pg_get_constraintdef(co.oid)
FROM pg_constraint co, ns WHERE co.connamespace = ns.oid ORDER BY 2, 3;
SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique,
       i.indisclustered, i.indisreplident
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid, ns WHERE c.relnamespace = ns.oid ORDER BY 2;
SELECT 'trigger', t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal ORDER BY 2, 3;
SELECT 'rule', r.tablename, r.rulename, r.definition FROM pg_rules r WHERE r.schemaname = 'dltrain' ORDER BY 2, 3;
SELECT 'policy', p.tablename, p.policyname, p.permissive, p.roles, p.cmd, p.qual, p.with_check
FROM pg_policies p WHERE p.schemaname = 'dltrain' ORDER BY 2, 3;

-- sequences, and which column an identity sequence belongs to
SELECT 'sequence', s.seqrelid::regclass::text, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax,
       s.seqmin, s.seqcache, s.seqcycle,
       (SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' (' || d.deptype::text || ')', ', ')
        FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
          AND d.refclassid = 'pg_class'::regclass)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid, ns WHERE c.relnamespace = ns.oid ORDER BY 2;

-- comments on anything in the schema (objects, columns, policies, constraints)
SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
FROM pg_description d
WHERE (pg_identify_object(d.classoid, d.objoid, 0)).schema = 'dltrain'
   OR (pg_identify_object(d.classoid, d.objoid, 0)).identity LIKE '% on dltrain.%'
ORDER BY 2;

-- initial privileges, which pg_dump compares with the current ones (a row
-- that holds the object's default ACL counts as no row)
SELECT 'initprivs', x.object, x.privtype, x.initprivs
FROM (
    SELECT pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) AS object, ip.privtype,
           CASE
               WHEN cardinality(ip.initprivs) = 0 AND ip.objsubid <> 0 THEN NULL
               WHEN ip.initprivs = acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)
                    AND ip.objsubid = 0 THEN NULL
               WHEN ip.initprivs = acldefault('f', p.proowner) THEN NULL
               WHEN ip.initprivs = acldefault('T', t.typowner) THEN NULL
               WHEN ip.initprivs = acldefault('n', n.nspowner) THEN NULL
               ELSE ip.initprivs
           END AS initprivs
    FROM pg_init_privs ip
    LEFT JOIN pg_class c ON ip.classoid = 'pg_class'::regclass AND c.oid = ip.objoid
    LEFT JOIN pg_proc p ON ip.classoid = 'pg_proc'::regclass AND p.oid = ip.objoid
    LEFT JOIN pg_type t ON ip.classoid = 'pg_type'::regclass AND t.oid = ip.objoid
    LEFT JOIN pg_namespace n ON ip.classoid = 'pg_namespace'::regclass AND n.oid = ip.objoid
    WHERE (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM members)
       OR n.nspname = 'dltrain'
       OR c.relnamespace = (SELECT oid FROM ns)
       OR p.pronamespace = (SELECT oid FROM ns)
       OR t.typnamespace = (SELECT oid FROM ns)
) x
WHERE x.initprivs IS NOT NULL
ORDER BY 2, 3;
