-- Where each link's delivery stands: the seq of its last delivered event. Every event of the
-- link up to it is delivered (one link's events go in order), so the link's next event is found
-- from here, one index probe past the delivered ones, however many there are (the probe used to
-- start at the link's first event, and the planner could walk every delivered one behind it).
ALTER TABLE docora.app_repositories ADD COLUMN delivered_seq bigint NOT NULL DEFAULT 0;
UPDATE docora.app_repositories l SET delivered_seq = d.seq
FROM (SELECT app_id, repository_id, max(seq) AS seq FROM docora.events WHERE status = 'delivered'
      GROUP BY app_id, repository_id) d
WHERE l.app_id = d.app_id AND l.repository_id = d.repository_id;
