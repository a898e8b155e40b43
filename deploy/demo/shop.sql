-- The demo business database of the quickstart: five tables with create_time, update_time
-- (auto-updating, indexed) and about 350,000 rows in all, spread over the last year.
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE shop;

CREATE TABLE digits (d TINYINT UNSIGNED PRIMARY KEY);
INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);
CREATE TABLE seq (n INT UNSIGNED PRIMARY KEY);
INSERT INTO seq SELECT a.d + 10*b.d + 100*c.d + 1000*d.d + 10000*e.d + 100000*f.d + 1
  FROM digits a, digits b, digits c, digits d, digits e, digits f
  WHERE a.d + 10*b.d + 100*c.d + 1000*d.d + 10000*e.d + 100000*f.d < 150000;

CREATE TABLE `user` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(191) NOT NULL,
  display_name VARCHAR(100) NOT NULL,
  country CHAR(2) NOT NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  create_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_update_time (update_time)
);
CREATE TABLE dataset (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  owner_id BIGINT UNSIGNED NOT NULL,
  title VARCHAR(255) NOT NULL,
  status ENUM('draft','published','archived') NOT NULL,
  meta JSON,
  create_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_update_time (update_time)
);
CREATE TABLE order_tab (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  state ENUM('new','paid','shipped','refunded') NOT NULL,
  note VARCHAR(255),
  create_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_update_time (update_time)
);
CREATE TABLE api_order (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id BIGINT UNSIGNED NOT NULL,
  request_id BINARY(16) NOT NULL,
  endpoint VARCHAR(64) NOT NULL,
  latency_ms INT UNSIGNED NOT NULL,
  create_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_update_time (update_time)
);
CREATE TABLE dataset_image (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  dataset_id BIGINT UNSIGNED NOT NULL,
  url VARCHAR(500) NOT NULL,
  width SMALLINT UNSIGNED NOT NULL,
  height SMALLINT UNSIGNED NOT NULL,
  create_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_update_time (update_time)
);

-- Times: one row a few minutes apart over the last year, updated up to a day later; many rows
-- share a second, as in real tables.
INSERT INTO `user` (id, email, display_name, country, balance, create_time, update_time)
  SELECT n, CONCAT('user', n, '@example.com'), CONCAT('User ', n), ELT(1 + n % 4, 'DE', 'FR', 'US', 'JP'),
         (n % 10000) / 100, NOW() - INTERVAL 365 DAY + INTERVAL n * 10 MINUTE,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 10 MINUTE + INTERVAL n % 1440 MINUTE
  FROM seq WHERE n <= 40000;
INSERT INTO dataset (id, owner_id, title, status, meta, create_time, update_time)
  SELECT n, 1 + n % 40000, CONCAT('Dataset ', n), ELT(1 + n % 3, 'draft', 'published', 'archived'),
         JSON_OBJECT('rows', n * 7, 'tags', JSON_ARRAY('a', 'b')),
         NOW() - INTERVAL 365 DAY + INTERVAL n * 25 MINUTE,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 25 MINUTE + INTERVAL n % 600 MINUTE
  FROM seq WHERE n <= 20000;
INSERT INTO order_tab (id, user_id, amount, currency, state, note, create_time, update_time)
  SELECT n, 1 + n % 40000, (n % 50000) / 100 + 1, ELT(1 + n % 3, 'EUR', 'USD', 'JPY'),
         ELT(1 + n % 4, 'new', 'paid', 'shipped', 'refunded'), IF(n % 5 = 0, NULL, CONCAT('order ', n, ' ✓')),
         NOW() - INTERVAL 365 DAY + INTERVAL n * 3 MINUTE,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 3 MINUTE + INTERVAL n % 100 MINUTE
  FROM seq WHERE n <= 150000;
INSERT INTO api_order (id, order_id, request_id, endpoint, latency_ms, create_time, update_time)
  SELECT n, n, UNHEX(MD5(n)), ELT(1 + n % 3, '/v1/orders', '/v1/pay', '/v1/ship'), n % 997,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 9 MINUTE,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 9 MINUTE + INTERVAL 1 SECOND
  FROM seq WHERE n <= 50000;
INSERT INTO dataset_image (id, dataset_id, url, width, height, create_time, update_time)
  SELECT n, 1 + n % 20000, CONCAT('https://img.example.com/', n, '.png'), 640 + n % 1000, 480 + n % 700,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 5 MINUTE,
         NOW() - INTERVAL 365 DAY + INTERVAL n * 5 MINUTE
  FROM seq WHERE n <= 90000;

DROP TABLE seq;
DROP TABLE digits;
