-- A delivery holds its event with a lease while the HTTP call runs (no transaction stays open
-- across the network); a crashed worker's lease runs out and the event is delivered again.
ALTER TABLE docora.events ADD COLUMN lease_until timestamptz;
