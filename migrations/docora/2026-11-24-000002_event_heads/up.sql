-- The head of each app's queue for a repository (its oldest event not delivered), found with one
-- index probe per link: delivery takes the next event among the heads, so taking one costs the
-- same with ten events waiting or a hundred thousand.
CREATE INDEX events_link_unfinished_idx ON docora.events (app_id, repository_id, seq)
    WHERE status IN ('pending', 'failed');
