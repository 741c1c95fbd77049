DROP TABLE docora.admin_sessions;
