-- Sealed secrets still stored: queued and sending deliveries, and failed ones kept for an
-- operator's requeue. The workers' housekeeping erases those of failed deliveries once they
-- have expired (a requeue could not send them any more); this index keeps that look-up small
-- however long the history grows.
CREATE INDEX deliveries_sealed_expiry ON deliveries (expires_at) WHERE sealed_payload IS NOT NULL;
