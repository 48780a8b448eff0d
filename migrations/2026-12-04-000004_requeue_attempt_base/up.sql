-- A requeued delivery (passgate dead requeue) gets a fresh retry ladder but keeps counting its
-- attempts, so attempt numbers never repeat: the retry schedule counts from attempt_base (the
-- attempts made before the last requeue), the attempt rows from 1 for ever.
ALTER TABLE deliveries ADD COLUMN attempt_base integer NOT NULL DEFAULT 0;
