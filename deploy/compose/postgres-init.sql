-- Run once by the postgres image on an empty data volume: MLflow's own database beside
-- driftline's store (POSTGRES_DB creates that one).
CREATE DATABASE mlflow OWNER driftline;
