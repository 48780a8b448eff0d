ALTER TABLE deliveries DROP COLUMN attempt_base;
