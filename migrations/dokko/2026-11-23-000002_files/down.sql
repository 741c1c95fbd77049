DROP TABLE dokko.object_journal;
DROP TABLE dokko.folders;
DROP TABLE dokko.files;
