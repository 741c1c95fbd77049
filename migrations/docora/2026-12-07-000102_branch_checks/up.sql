-- When a scan last asked the repository which branch is its default (its HEAD), so a branch
-- renamed on GitHub is followed even when the old one still exists (DEFAULT_BRANCH_CHECK_SECS).
ALTER TABLE docora.repositories ADD COLUMN branch_checked_at timestamptz;
