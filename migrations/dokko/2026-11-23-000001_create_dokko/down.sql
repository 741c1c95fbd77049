DROP TABLE dokko.repository_permissions;
DROP TABLE dokko.repositories;
DROP TABLE dokko.document_sources;
DROP TABLE dokko.permissions;
DROP TABLE dokko.service_accounts;
DROP TABLE dokko.invitations;
DROP TABLE dokko.users;
DROP TABLE dokko.tenants;
