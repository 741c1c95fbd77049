mod s3;
mod git_server;
mod webhook_sink;
