mod git_server;
mod s3;
mod webhook_sink;
