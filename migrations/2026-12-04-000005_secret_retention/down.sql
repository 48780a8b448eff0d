DROP INDEX deliveries_sealed_expiry;
