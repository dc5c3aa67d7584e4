-- dltrain.block_shuffle: a TABLESAMPLE method that reads every page once, in
-- a seeded random order of block ranges.

-- 10,000 fixed-width rows (two int4 columns) in id order: 226 rows a page,
-- 45 pages (with 8 kB pages).  No autovacuum, so nothing moves.
CREATE TABLE bs (id int4 NOT NULL, grp int4 NOT NULL)
    WITH (fillfactor = 100, autovacuum_enabled = off);
INSERT INTO bs SELECT g, g % 10 FROM generate_series(1, 10000) g;
ANALYZE bs;
SELECT pg_relation_size('bs') / current_setting('block_size')::int AS pages;

-- The scan's output in visit order: position, page, offset, id.
CREATE FUNCTION bs_visit(ppr float8, seed float8)
RETURNS TABLE (pos bigint, blk int, off int, id int4)
LANGUAGE sql AS $$
    SELECT row_number() OVER (), (ctid::text::point)[0]::int,
           (ctid::text::point)[1]::int, id
    FROM bs TABLESAMPLE dltrain.block_shuffle(ppr) REPEATABLE (seed)
$$;
-- The page order of a scan: each page once, in the order first visited.
CREATE FUNCTION bs_pages(ppr float8, seed float8) RETURNS text
LANGUAGE sql AS $$
    SELECT string_agg(blk::text, ',' ORDER BY first)
    FROM (SELECT blk, min(pos) AS first FROM bs_visit(ppr, seed) GROUP BY blk) p
$$;

-- Every row exactly once: the same rows as a plain scan.
SELECT count(*), count(DISTINCT id), sum(id), count(DISTINCT ctid)
FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7);
SELECT count(*), count(DISTINCT id), sum(id), count(DISTINCT ctid) FROM bs;
-- ... and without REPEATABLE (a random seed)
SELECT count(*), count(DISTINCT id), sum(id)
FROM bs TABLESAMPLE dltrain.block_shuffle(4);

-- Every page once, each page's rows in one run, in offset order.
SELECT count(DISTINCT blk) AS pages,
       bool_and(n = last - first + 1) AS page_rows_contiguous,
       bool_and(in_order) AS offsets_in_order
FROM (SELECT blk, count(*) AS n, min(pos) AS first, max(pos) AS last,
             bool_and(off > prev_off OR prev_off IS NULL) AS in_order
      FROM (SELECT *, lag(off) OVER (PARTITION BY blk ORDER BY pos) AS prev_off
            FROM bs_visit(4, 7)) v
      GROUP BY blk) p;

-- The page order is not sequential: the first pages visited.
SELECT blk FROM bs_visit(4, 7) GROUP BY blk ORDER BY min(pos) LIMIT 5;
SELECT bs_pages(4, 7) = (SELECT string_agg(g::text, ',') FROM generate_series(0, 44) g)
    AS sequential;

-- Ranges of 4 consecutive pages (the last one, page 44, alone) in a shuffled
-- order; the rows of a range come in one run, in page then offset order.
SELECT count(*) AS ranges,
       string_agg(r::text, ',' ORDER BY first) AS range_order,
       bool_and(contiguous) AS ranges_read_in_page_order
FROM (SELECT r, min(pos) AS first, count(DISTINCT shift) = 1 AS contiguous
      FROM (SELECT blk / 4 AS r, pos,
                   pos - row_number() OVER (PARTITION BY blk / 4 ORDER BY blk, off)
                       AS shift
            FROM bs_visit(4, 7)) v
      GROUP BY r) q;

-- The same seed gives the same order; another seed a different one.
SELECT bs_pages(4, 7) = bs_pages(4, 7) AS same_seed_same_order,
       bs_pages(4, 8) <> bs_pages(4, 7) AS other_seed_other_order,
       (SELECT string_agg(id::text, ',' ORDER BY pos) FROM bs_visit(4, 7)) =
       (SELECT string_agg(id::text, ',' ORDER BY pos) FROM bs_visit(4, 7))
           AS same_seed_same_rows;

-- Rescans within a query repeat the order, with or without REPEATABLE; a
-- pages-per-range argument that changes between rescans is honoured.
SELECT count(DISTINCT o) AS distinct_orders FROM generate_series(1, 3) x,
LATERAL (SELECT string_agg(ctid::text, ',') AS o
         FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7)
         WHERE x > 0) s;
SELECT count(DISTINCT o) AS distinct_orders FROM generate_series(1, 3) x,
LATERAL (SELECT string_agg(ctid::text, ',') AS o
         FROM bs TABLESAMPLE dltrain.block_shuffle(4) WHERE x > 0) s;
SELECT x, rows, pages, o = bs_pages(x, 7) AS same_order_as_alone
FROM generate_series(1, 3) x,
LATERAL (SELECT sum(n) AS rows, count(*) AS pages,
                string_agg(blk::text, ',' ORDER BY first) AS o
         FROM (SELECT (ctid::text::point)[0]::int AS blk, count(*) AS n,
                      min(pos) AS first
               FROM (SELECT ctid, row_number() OVER () AS pos
                     FROM bs TABLESAMPLE dltrain.block_shuffle(x) REPEATABLE (7)) r
               GROUP BY 1) p) s;

-- One page per range; ranges as large as the table or larger: one range,
-- read in page order.
SELECT bs_pages(1, 7) <> bs_pages(4, 7) AS differs, count(*) AS rows
FROM bs_visit(1, 7);
SELECT bs_pages(45, 7) = bs_pages(1000, 7) AS same,
       bs_pages(1000, 7) = (SELECT string_agg(g::text, ',') FROM generate_series(0, 44) g)
           AS sequential;
SELECT count(*), sum(id) FROM bs TABLESAMPLE dltrain.block_shuffle(1e300) REPEATABLE (1);

-- Filters, joins and MVCC work as in any scan.
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7)
WHERE grp = 3;
BEGIN;
DELETE FROM bs WHERE id <= 100;
SELECT count(*), min(id) FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7);
ROLLBACK;
SELECT count(*), min(id) FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7);

-- An empty table.
CREATE TABLE bs_empty (id int4);
SELECT count(*) FROM bs_empty TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7);
SELECT count(*) FROM bs_empty TABLESAMPLE dltrain.block_shuffle(4);

-- Bad arguments.
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(0);
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(-1);
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(2.5);
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(NULL);
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle('NaN');
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle('Infinity');
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (NULL);
SELECT count(*) FROM bs TABLESAMPLE dltrain.block_shuffle(4, 2);

-- A Sample Scan, estimated as a full scan.
EXPLAIN (COSTS OFF)
SELECT * FROM bs TABLESAMPLE dltrain.block_shuffle(4) REPEATABLE (7);
CREATE FUNCTION bs_plan_rows(query text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN plan -> 0 -> 'Plan' ->> 'Plan Rows';
END
$$;
SELECT bs_plan_rows('SELECT * FROM bs TABLESAMPLE dltrain.block_shuffle(4)') AS sample_rows,
       bs_plan_rows('SELECT * FROM bs') AS seqscan_rows;

-- Privileges and row-level security apply.
CREATE ROLE regress_bs_reader;
CREATE ROLE regress_bs_stranger;
GRANT USAGE ON SCHEMA dltrain TO regress_bs_reader, regress_bs_stranger;
CREATE TABLE bs_rls (id int4, owner name) WITH (autovacuum_enabled = off);
INSERT INTO bs_rls
SELECT g, CASE WHEN g % 4 = 0 THEN 'regress_bs_reader' ELSE 'someone_else' END
FROM generate_series(1, 2000) g;
ALTER TABLE bs_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY bs_own ON bs_rls USING (owner = current_user);
GRANT SELECT ON bs_rls TO regress_bs_reader;
SET ROLE regress_bs_reader;
SELECT count(*), bool_and(owner = 'regress_bs_reader') AS only_own
FROM bs_rls TABLESAMPLE dltrain.block_shuffle(2) REPEATABLE (7);
SELECT count(*) FROM bs_rls TABLESAMPLE dltrain.block_shuffle(2);
RESET ROLE;
SET ROLE regress_bs_stranger;
SELECT count(*) FROM bs_rls TABLESAMPLE dltrain.block_shuffle(2) REPEATABLE (7);
RESET ROLE;
SELECT count(*) FROM bs_rls TABLESAMPLE dltrain.block_shuffle(2) REPEATABLE (7);

-- Clean up.
DROP TABLE bs_rls;
REVOKE USAGE ON SCHEMA dltrain FROM regress_bs_reader, regress_bs_stranger;
DROP ROLE regress_bs_reader;
DROP ROLE regress_bs_stranger;
DROP FUNCTION bs_plan_rows(text);
DROP FUNCTION bs_pages(float8, float8);
DROP FUNCTION bs_visit(float8, float8);
DROP TABLE bs, bs_empty;
