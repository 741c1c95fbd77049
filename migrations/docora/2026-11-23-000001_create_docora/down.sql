DROP TABLE docora.app_repositories;
DROP TABLE docora.repositories;
DROP TABLE docora.apps;
