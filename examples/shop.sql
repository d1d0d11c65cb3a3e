-- A small shop for Decant's quickstart: customers, products, orders, order items and notes.
-- Deterministic: rebuild examples/shop.db from this file with examples/make-shop-db.sh.
-- It exercises what a migration must get right: integer, real, numeric(p,s), text, blob,
-- boolean, date and datetime columns, NULLs, non-ASCII text and emoji, foreign keys, a
-- composite primary key in a WITHOUT ROWID table, check constraints, a view, and a table and a
-- column whose names need quoting ("order notes", "author's name").

PRAGMA foreign_keys = ON;

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    email       VARCHAR(120) NOT NULL UNIQUE,
    full_name   TEXT NOT NULL,
    country     CHAR(2),
    vip         BOOLEAN NOT NULL DEFAULT 0,
    birth_date  DATE,
    created_at  DATETIME NOT NULL,
    CHECK (length(email) > 3)
);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    price       NUMERIC(10,2) NOT NULL CONSTRAINT price_not_negative CHECK (price >= 0),
    weight_kg   REAL,
    thumbnail   BLOB,
    active      BOOLEAN NOT NULL DEFAULT 1
);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    status      VARCHAR(16) NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
    ordered_at  DATETIME NOT NULL,
    shipped_on  DATE,
    total       NUMERIC(12,2)
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_status_day_idx ON orders (status, ordered_at);

CREATE TABLE order_items (
    order_id    INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no     INTEGER NOT NULL,
    product_id  INTEGER NOT NULL REFERENCES products (id),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_price  NUMERIC(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;
CREATE INDEX order_items_product_idx ON order_items (product_id);

CREATE TABLE "order notes" (
    id              INTEGER PRIMARY KEY,
    order_id        INTEGER NOT NULL REFERENCES orders (id),
    "author's name" TEXT,
    note            TEXT NOT NULL,
    written_at      DATETIME
);

CREATE VIEW customer_totals AS
    SELECT c.id, c.full_name, count(o.id) AS orders, sum(o.total) AS spent
    FROM customers AS c LEFT JOIN orders AS o ON o.customer_id = c.id
    GROUP BY c.id;

-- 120 customers.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
INSERT INTO customers (email, full_name, country, vip, birth_date, created_at)
SELECT
    'customer' || i || '@example.com',
    CASE i % 10
        WHEN 0 THEN 'Zoë Müller'
        WHEN 1 THEN 'José Álvarez'
        WHEN 2 THEN '李雷'
        WHEN 3 THEN 'Ольга Петрова'
        WHEN 4 THEN 'Søren Kierkegård'
        WHEN 5 THEN 'Amélie Poulain 🎈'
        WHEN 6 THEN 'Siobhán O''Brien'
        WHEN 7 THEN 'محمد علي'
        WHEN 8 THEN 'Ada Lovelace'
        ELSE 'Grace Hopper 👩‍💻'
    END || ' #' || i,
    CASE i % 6 WHEN 0 THEN 'DE' WHEN 1 THEN 'ES' WHEN 2 THEN 'CN' WHEN 3 THEN 'UA'
               WHEN 4 THEN 'DK' ELSE NULL END,
    i % 7 = 0,
    CASE WHEN i % 11 = 0 THEN NULL
         ELSE date('1940-01-01', '+' || (i * 97 % 25000) || ' days') END,
    datetime('2023-01-01 08:00:00', '+' || (i * 7919 % 31536000) || ' seconds')
FROM n;

-- 40 products.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
INSERT INTO products (id, sku, name, price, weight_kg, thumbnail, active)
SELECT
    i,
    printf('SKU-%04d', i),
    CASE i % 8
        WHEN 0 THEN '☕ Coffee beans'
        WHEN 1 THEN 'Teapot 🫖'
        WHEN 2 THEN 'Crème brûlée torch'
        WHEN 3 THEN 'Notebook, A5'
        WHEN 4 THEN 'Mug "Hello, world"'
        WHEN 5 THEN 'Ramen bowl 🍜'
        WHEN 6 THEN 'Käsemesser'
        ELSE 'Chopsticks 箸'
    END || ' ' || i,
    (i * 1373 % 20000) / 100.0,
    CASE WHEN i % 5 = 0 THEN NULL ELSE (i * 37 % 5000) / 1000.0 END,
    CASE i % 3 WHEN 0 THEN X'89504E470D0A1A0A' WHEN 1 THEN zeroblob(4) ELSE NULL END,
    i % 9 <> 0
FROM n;

-- 300 orders.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO orders (id, customer_id, status, ordered_at, shipped_on)
SELECT
    i,
    1 + (i * 31 % 120),
    CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'cancelled' END,
    strftime('%Y-%m-%d %H:%M:%f', '2024-01-01 00:00:00',
             '+' || (i * 104729 % 31536000) || ' seconds', '+' || ((i * 7 % 1000) / 1000.0) || ' seconds'),
    CASE WHEN i % 4 = 2 THEN date('2024-01-03', '+' || (i * 104729 % 31536000) || ' seconds')
         ELSE NULL END
FROM n;

-- One to four lines per order.
INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
SELECT o.id, l.n, p.id, 1 + (o.id + l.n) % 5, p.price
FROM orders AS o
JOIN (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) AS l
    ON l.n <= 1 + o.id % 4
JOIN products AS p ON p.id = 1 + (o.id * 7 + l.n * 13) % 40;

-- Totals in whole cents, so every total has exactly two decimals.
UPDATE orders SET total = (
    SELECT sum(quantity * CAST(round(unit_price * 100) AS INTEGER)) / 100.0
    FROM order_items WHERE order_id = orders.id
) WHERE status <> 'cancelled';

-- 60 notes.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT INTO "order notes" (order_id, "author's name", note, written_at)
SELECT
    1 + (i * 53 % 300),
    CASE i % 4 WHEN 0 THEN 'Support' WHEN 1 THEN 'Zoë' WHEN 2 THEN NULL ELSE 'Łukasz' END,
    CASE i % 5
        WHEN 0 THEN 'Leave at the door 🚪'
        WHEN 1 THEN 'Gift wrap, please 🎁'
        WHEN 2 THEN 'Customer said: "fragile"'
        WHEN 3 THEN ''
        ELSE 'Rückruf erbeten; Tel. +49 30 1234567'
    END,
    CASE WHEN i % 6 = 0 THEN NULL
         ELSE datetime('2024-02-01 12:00:00', '+' || (i * 3571) || ' minutes') END
FROM n;
