"""driftline's monitor and closed loop as Airflow DAGs (the monitoring stack driftline replaces
ran monitor and retrain as Airflow DAGs). Copy this file into your DAGs folder on workers that
have driftline installed, and set the Airflow Variables driftline_database_url and
driftline_mlflow_tracking_uri (the same store and registry as the API; run the API with
DRIFTLINE_SCHEDULER=false so that the jobs run here and only here).

Each task is one `driftline` command: exit codes that report a finding (a drift warning, a
retrain not triggered, a challenger rejected by the gate) are mapped to success, so a failed
task always means something broke. The same commands run as Kubernetes CronJobs in
deploy/kubernetes/cronjobs.yaml.

Not run by driftline's tests: Airflow 3 pins an older FastAPI than driftline's, so it cannot
share driftline's environment without a downgrade. tests/deploy/test_airflow.py parses this
file with `ast` and every command in it with driftline's own CLI instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

ENV = {
    "DRIFTLINE_DATABASE_URL": "{{ var.value.driftline_database_url }}",
    "DRIFTLINE_MLFLOW_TRACKING_URI": "{{ var.value.driftline_mlflow_tracking_uri }}",
    "DRIFTLINE_HOME": "/tmp/driftline-airflow",
    "DRIFTLINE_LOG_FORMAT": "json",
}
DEFAULTS = {
    "owner": "ml-platform",
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
}

with DAG(
    dag_id="driftline_monitor",
    description="driftline check: drift, quality, performance, concept drift; stores a report",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["driftline", "monitoring"],
):
    BashOperator(
        task_id="check",
        bash_command="driftline check --window 1h || [ $? -ge 2 ]",
        env=ENV,
        append_env=True,
        execution_timeout=timedelta(minutes=10),
    )

with DAG(
    dag_id="driftline_loop",
    description="driftline's closed loop: advance a rollout, else retrain when triggered",
    schedule="*/10 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["driftline", "retrain"],
):
    rollout_step = BashOperator(
        task_id="rollout_step",
        bash_command="driftline rollout step",
        env=ENV,
        append_env=True,
        execution_timeout=timedelta(minutes=5),
    )
    retrain = BashOperator(
        task_id="retrain_if_triggered",
        bash_command="driftline retrain --if-triggered || [ $? -ge 2 ]",
        env=ENV,
        append_env=True,
        execution_timeout=timedelta(minutes=30),
    )
    rollout_step >> retrain
