-- ntpmon's schema at the baseline revision (0001) in SQLite's dialect, frozen: the
-- SQLite twin of baseline/mysql.sql. Never edit; later revisions change the schema.

CREATE TABLE IF NOT EXISTS accounts (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  id_token VARCHAR(36),
  name VARCHAR(255),
  organization_name VARCHAR(150),
  organization_url VARCHAR(150),
  public_profile SMALLINT DEFAULT '0' NOT NULL,
  url_slug VARCHAR(150),
  flags TEXT,
  created_on DATETIME NOT NULL,
  modified_on DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
  stripe_customer_id VARCHAR(255),
  CONSTRAINT url_slug_idx UNIQUE (url_slug),
  CONSTRAINT stripe_customer_id UNIQUE (stripe_customer_id),
  CONSTRAINT id_token UNIQUE (id_token)
);

CREATE TABLE IF NOT EXISTS api_keys (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  key_hash VARCHAR(64) NOT NULL,
  tls_name VARCHAR(255) NOT NULL,
  account_id INTEGER,
  created_on DATETIME NOT NULL,
  last_used_on DATETIME,
  revoked_on DATETIME,
  CONSTRAINT key_hash UNIQUE (key_hash)
);

CREATE INDEX IF NOT EXISTS api_keys_tls_name ON api_keys (tls_name);

CREATE TABLE IF NOT EXISTS registrations (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  registration_id VARCHAR(26) NOT NULL,
  hostname VARCHAR(255) DEFAULT '' NOT NULL,
  account_ref VARCHAR(255),
  ipv4 VARCHAR(40),
  ipv6 VARCHAR(40),
  status VARCHAR(9) DEFAULT 'pending' NOT NULL,
  account_id INTEGER,
  tls_name VARCHAR(255),
  created_on DATETIME NOT NULL,
  last_seen DATETIME NOT NULL,
  approved_on DATETIME,
  completed_on DATETIME,
  CONSTRAINT registration_id UNIQUE (registration_id),
  CONSTRAINT registration_status CHECK (status IN ('pending', 'approved', 'completed'))
);

CREATE INDEX IF NOT EXISTS registrations_status ON registrations (status);

CREATE TABLE IF NOT EXISTS system_settings (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  "key" VARCHAR(255) NOT NULL,
  value TEXT NOT NULL,
  created_on DATETIME NOT NULL,
  modified_on DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
  CONSTRAINT "key" UNIQUE ("key")
);

CREATE TABLE IF NOT EXISTS monitors (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  id_token VARCHAR(36),
  type VARCHAR(7) DEFAULT 'monitor' NOT NULL,
  user_id INTEGER,
  account_id INTEGER,
  hostname VARCHAR(255) DEFAULT '' NOT NULL,
  location VARCHAR(255) DEFAULT '' NOT NULL,
  ip VARCHAR(40),
  ip_version VARCHAR(2),
  tls_name VARCHAR(255),
  api_key VARCHAR(64),
  status VARCHAR(7) NOT NULL,
  config TEXT NOT NULL,
  client_version VARCHAR(255) DEFAULT '' NOT NULL,
  last_seen DATETIME,
  last_submit DATETIME,
  created_on DATETIME NOT NULL,
  deleted_on DATETIME,
  is_current SMALLINT DEFAULT '1',
  CONSTRAINT api_key UNIQUE (api_key),
  CONSTRAINT monitors_tls_name UNIQUE (tls_name, ip_version),
  CONSTRAINT id_token UNIQUE (id_token),
  CONSTRAINT ip UNIQUE (ip, is_current),
  CONSTRAINT monitors_account_fk FOREIGN KEY(account_id) REFERENCES accounts (id),
  CONSTRAINT monitor_type CHECK (type IN ('monitor', 'score')),
  CONSTRAINT monitor_ip_version CHECK (ip_version IN ('v4', 'v6')),
  CONSTRAINT monitor_status CHECK (status IN ('pending', 'testing', 'active', 'paused', 'deleted'))
);

CREATE INDEX IF NOT EXISTS monitors_account_fk ON monitors (account_id);

CREATE INDEX IF NOT EXISTS monitors_user_id ON monitors (user_id);

CREATE INDEX IF NOT EXISTS type_status ON monitors (type, status);

CREATE TABLE IF NOT EXISTS servers (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  ip VARCHAR(40) NOT NULL,
  ip_version VARCHAR(2) DEFAULT 'v4' NOT NULL,
  user_id INTEGER,
  account_id INTEGER,
  hostname VARCHAR(255),
  stratum SMALLINT,
  in_pool SMALLINT DEFAULT '0' NOT NULL,
  in_server_list SMALLINT DEFAULT '0' NOT NULL,
  netspeed INTEGER DEFAULT '10000' NOT NULL,
  netspeed_target INTEGER DEFAULT '10000' NOT NULL,
  created_on DATETIME NOT NULL,
  updated_on DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
  score_ts DATETIME,
  score_raw DOUBLE DEFAULT '0' NOT NULL,
  deletion_on DATE,
  flags VARCHAR(4096) DEFAULT '{}' NOT NULL,
  CONSTRAINT ip UNIQUE (ip),
  CONSTRAINT server_account_fk FOREIGN KEY(account_id) REFERENCES accounts (id),
  CONSTRAINT server_ip_version CHECK (ip_version IN ('v4', 'v6'))
);

CREATE INDEX IF NOT EXISTS admin ON servers (user_id);

CREATE INDEX IF NOT EXISTS deletion_on ON servers (deletion_on);

CREATE INDEX IF NOT EXISTS score_ts ON servers (score_ts);

CREATE INDEX IF NOT EXISTS server_account_fk ON servers (account_id);

CREATE TABLE IF NOT EXISTS log_scores (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  monitor_id INTEGER,
  server_id INTEGER NOT NULL,
  ts DATETIME NOT NULL,
  score DOUBLE DEFAULT '0' NOT NULL,
  step DOUBLE DEFAULT '0' NOT NULL,
  "offset" DOUBLE,
  rtt INTEGER,
  attributes TEXT,
  CONSTRAINT log_score_monitor_id_fk FOREIGN KEY(monitor_id) REFERENCES monitors (id),
  CONSTRAINT log_scores_server FOREIGN KEY(server_id) REFERENCES servers (id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS log_score_monitor_id_fk ON log_scores (monitor_id);

CREATE INDEX IF NOT EXISTS log_scores_server_ts_idx ON log_scores (server_id, ts);

CREATE INDEX IF NOT EXISTS ts ON log_scores (ts);

CREATE TABLE IF NOT EXISTS server_scores (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  monitor_id INTEGER NOT NULL,
  server_id INTEGER NOT NULL,
  score_ts DATETIME,
  score_raw DOUBLE DEFAULT '0' NOT NULL,
  stratum SMALLINT,
  status VARCHAR(9) DEFAULT 'candidate' NOT NULL,
  queue_ts DATETIME,
  created_on DATETIME NOT NULL,
  modified_on DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
  constraint_violation_type VARCHAR(50),
  constraint_violation_since DATETIME,
  last_constraint_check DATETIME,
  pause_reason VARCHAR(20),
  CONSTRAINT server_id UNIQUE (server_id, monitor_id),
  CONSTRAINT server_score_monitor_fk FOREIGN KEY(monitor_id) REFERENCES monitors (id),
  CONSTRAINT server_score_server_id FOREIGN KEY(server_id) REFERENCES servers (id) ON DELETE CASCADE,
  CONSTRAINT server_score_status CHECK (status IN ('candidate', 'testing', 'active', 'paused'))
);

CREATE INDEX IF NOT EXISTS idx_constraint_violation ON server_scores (constraint_violation_type, constraint_violation_since);

CREATE INDEX IF NOT EXISTS idx_paused_monitors ON server_scores (status, last_constraint_check, pause_reason);

CREATE INDEX IF NOT EXISTS monitor_id ON server_scores (monitor_id, server_id);

CREATE INDEX IF NOT EXISTS monitor_id_2 ON server_scores (monitor_id, score_ts);

CREATE TABLE IF NOT EXISTS servers_monitor_review (
  server_id INTEGER NOT NULL,
  last_review DATETIME,
  next_review DATETIME,
  last_change DATETIME,
  config VARCHAR(4096) DEFAULT '' NOT NULL,
  PRIMARY KEY (server_id),
  CONSTRAINT server_monitor_review_server_id_fk FOREIGN KEY(server_id) REFERENCES servers (id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS next_review ON servers_monitor_review (next_review);

CREATE TABLE IF NOT EXISTS scorer_status (
  id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  scorer_id INTEGER NOT NULL,
  log_score_id INTEGER NOT NULL,
  modified_on DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
  CONSTRAINT scorer_log_score_id FOREIGN KEY(log_score_id) REFERENCES log_scores (id),
  CONSTRAINT scores_status_monitor_id_fk FOREIGN KEY(scorer_id) REFERENCES monitors (id)
);

CREATE INDEX IF NOT EXISTS scorer_log_score_id ON scorer_status (log_score_id);

CREATE INDEX IF NOT EXISTS scores_status_monitor_id_fk ON scorer_status (scorer_id);
