-- One server, three databases: MLflow runs and registry, MLflow's users and permissions, Optuna studies.
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
CREATE DATABASE optuna;
