-- ntpmon's schema at the baseline revision (0001): schema.sql as of commit 01223e5,
-- frozen. Never edit; later revisions change the schema.
SET FOREIGN_KEY_CHECKS = 0;

CREATE TABLE IF NOT EXISTS accounts (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  id_token VARCHAR(36),
  name VARCHAR(255),
  organization_name VARCHAR(150),
  organization_url VARCHAR(150),
  public_profile TINYINT(1) NOT NULL DEFAULT '0',
  url_slug VARCHAR(150),
  flags json,
  created_on DATETIME NOT NULL,
  modified_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  stripe_customer_id VARCHAR(255) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin,
  PRIMARY KEY (id),
  CONSTRAINT url_slug_idx UNIQUE (url_slug),
  CONSTRAINT stripe_customer_id UNIQUE (stripe_customer_id),
  CONSTRAINT id_token UNIQUE (id_token)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS api_keys (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  key_hash VARCHAR(64) NOT NULL,
  tls_name VARCHAR(255) NOT NULL,
  account_id INTEGER UNSIGNED,
  created_on DATETIME NOT NULL,
  last_used_on DATETIME,
  revoked_on DATETIME,
  PRIMARY KEY (id),
  CONSTRAINT key_hash UNIQUE (key_hash),
  KEY api_keys_tls_name (tls_name)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS registrations (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  registration_id VARCHAR(26) NOT NULL,
  hostname VARCHAR(255) NOT NULL DEFAULT '',
  account_ref VARCHAR(255),
  ipv4 VARCHAR(40),
  ipv6 VARCHAR(40),
  status ENUM('pending','approved','completed') NOT NULL DEFAULT 'pending',
  account_id INTEGER UNSIGNED,
  tls_name VARCHAR(255),
  created_on DATETIME NOT NULL,
  last_seen DATETIME NOT NULL,
  approved_on DATETIME,
  completed_on DATETIME,
  PRIMARY KEY (id),
  CONSTRAINT registration_id UNIQUE (registration_id),
  KEY registrations_status (status)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS system_settings (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  `key` VARCHAR(255) NOT NULL,
  value TEXT NOT NULL,
  created_on DATETIME NOT NULL,
  modified_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT `key` UNIQUE (`key`)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS monitors (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  id_token VARCHAR(36),
  type ENUM('monitor','score') NOT NULL DEFAULT 'monitor',
  user_id INTEGER UNSIGNED,
  account_id INTEGER UNSIGNED,
  hostname VARCHAR(255) NOT NULL DEFAULT '',
  location VARCHAR(255) NOT NULL DEFAULT '',
  ip VARCHAR(40),
  ip_version ENUM('v4','v6'),
  tls_name VARCHAR(255),
  api_key VARCHAR(64),
  status ENUM('pending','testing','active','paused','deleted') NOT NULL,
  config TEXT NOT NULL,
  client_version VARCHAR(255) NOT NULL DEFAULT '',
  last_seen DATETIME(6),
  last_submit DATETIME(6),
  created_on DATETIME NOT NULL,
  deleted_on DATETIME,
  is_current TINYINT(1) DEFAULT '1',
  PRIMARY KEY (id),
  CONSTRAINT api_key UNIQUE (api_key),
  CONSTRAINT monitors_tls_name UNIQUE (tls_name, ip_version),
  CONSTRAINT id_token UNIQUE (id_token),
  CONSTRAINT ip UNIQUE (ip, is_current),
  CONSTRAINT monitors_account_fk FOREIGN KEY(account_id) REFERENCES accounts (id),
  KEY monitors_account_fk (account_id),
  KEY monitors_user_id (user_id),
  KEY type_status (type, status)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS servers (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  ip VARCHAR(40) NOT NULL,
  ip_version ENUM('v4','v6') NOT NULL DEFAULT 'v4',
  user_id INTEGER UNSIGNED,
  account_id INTEGER UNSIGNED,
  hostname VARCHAR(255),
  stratum TINYINT UNSIGNED,
  in_pool TINYINT UNSIGNED NOT NULL DEFAULT '0',
  in_server_list TINYINT UNSIGNED NOT NULL DEFAULT '0',
  netspeed INTEGER UNSIGNED NOT NULL DEFAULT '10000',
  netspeed_target INTEGER UNSIGNED NOT NULL DEFAULT '10000',
  created_on DATETIME NOT NULL,
  updated_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  score_ts DATETIME,
  score_raw DOUBLE NOT NULL DEFAULT '0',
  deletion_on DATE,
  flags VARCHAR(4096) NOT NULL DEFAULT '{}',
  PRIMARY KEY (id),
  CONSTRAINT ip UNIQUE (ip),
  CONSTRAINT server_account_fk FOREIGN KEY(account_id) REFERENCES accounts (id),
  KEY `admin` (user_id),
  KEY deletion_on (deletion_on),
  KEY score_ts (score_ts),
  KEY server_account_fk (account_id)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS log_scores (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  monitor_id INTEGER UNSIGNED,
  server_id INTEGER UNSIGNED NOT NULL,
  ts DATETIME NOT NULL,
  score DOUBLE NOT NULL DEFAULT '0',
  step DOUBLE NOT NULL DEFAULT '0',
  `offset` DOUBLE,
  rtt MEDIUMINT,
  attributes TEXT,
  PRIMARY KEY (id),
  CONSTRAINT log_score_monitor_id_fk FOREIGN KEY(monitor_id) REFERENCES monitors (id),
  CONSTRAINT log_scores_server FOREIGN KEY(server_id) REFERENCES servers (id) ON DELETE CASCADE,
  KEY log_score_monitor_id_fk (monitor_id),
  KEY log_scores_server_ts_idx (server_id, ts),
  KEY ts (ts)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS server_scores (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  monitor_id INTEGER UNSIGNED NOT NULL,
  server_id INTEGER UNSIGNED NOT NULL,
  score_ts DATETIME,
  score_raw DOUBLE NOT NULL DEFAULT '0',
  stratum TINYINT UNSIGNED,
  status ENUM('candidate','testing','active','paused') NOT NULL DEFAULT 'candidate',
  queue_ts DATETIME,
  created_on DATETIME NOT NULL,
  modified_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  constraint_violation_type VARCHAR(50),
  constraint_violation_since DATETIME,
  last_constraint_check DATETIME,
  pause_reason VARCHAR(20),
  PRIMARY KEY (id),
  CONSTRAINT server_id UNIQUE (server_id, monitor_id),
  CONSTRAINT server_score_monitor_fk FOREIGN KEY(monitor_id) REFERENCES monitors (id),
  CONSTRAINT server_score_server_id FOREIGN KEY(server_id) REFERENCES servers (id) ON DELETE CASCADE,
  KEY idx_constraint_violation (constraint_violation_type, constraint_violation_since),
  KEY idx_paused_monitors (status, last_constraint_check, pause_reason),
  KEY monitor_id (monitor_id, server_id),
  KEY monitor_id_2 (monitor_id, score_ts)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS servers_monitor_review (
  server_id INTEGER UNSIGNED NOT NULL,
  last_review DATETIME,
  next_review DATETIME,
  last_change DATETIME,
  config VARCHAR(4096) NOT NULL DEFAULT '',
  PRIMARY KEY (server_id),
  CONSTRAINT server_monitor_review_server_id_fk FOREIGN KEY(server_id) REFERENCES servers (id) ON DELETE CASCADE,
  KEY next_review (next_review)
)ENGINE=InnoDB CHARSET=utf8mb3;

CREATE TABLE IF NOT EXISTS scorer_status (
  id INTEGER UNSIGNED NOT NULL AUTO_INCREMENT,
  scorer_id INTEGER UNSIGNED NOT NULL,
  log_score_id BIGINT UNSIGNED NOT NULL,
  modified_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT scorer_log_score_id FOREIGN KEY(log_score_id) REFERENCES log_scores (id),
  CONSTRAINT scores_status_monitor_id_fk FOREIGN KEY(scorer_id) REFERENCES monitors (id),
  KEY scorer_log_score_id (log_score_id),
  KEY scores_status_monitor_id_fk (scorer_id)
)ENGINE=InnoDB CHARSET=utf8mb3;

SET FOREIGN_KEY_CHECKS = 1;
