DROP INDEX docora.events_link_unfinished_idx;
