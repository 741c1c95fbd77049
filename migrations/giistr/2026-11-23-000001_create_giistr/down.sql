DROP TABLE giistr.repo_tag_assocs;
DROP TABLE giistr.repos;
DROP TABLE giistr.tags;
DROP TABLE giistr.users;
