mod git_server;
mod pool;
mod s3;
mod webhook_sink;
