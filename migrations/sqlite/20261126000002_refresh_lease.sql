-- One refresh per session across replicas: whoever sets the lease refreshes.
ALTER TABLE sessions ADD COLUMN refresh_lease_until INTEGER;
