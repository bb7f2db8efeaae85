"""Names shared by the service, the local environment, the rules, the dashboards and the Pulumi program.

Every Prometheus metric, label and process role that more than one part of mlship relies on is
defined here once. Change a name here and every consumer follows.
"""

from __future__ import annotations

# --- Roles -------------------------------------------------------------------------------------
# A deployment always has a stable slot and may have a canary slot. Promotion copies the canary's
# model version into the stable slot (as Flagger and Argo Rollouts do), so roles never swap names.
ROLE_STABLE = "stable"
ROLE_CANARY = "canary"
ROLES = (ROLE_STABLE, ROLE_CANARY)
# Local environment slots: a process (and a HAProxy server) each. The stable role may run in two.
SLOT_STABLE_2 = "stable-2"
STABLE_SLOTS = (ROLE_STABLE, SLOT_STABLE_2)
SLOTS = (*STABLE_SLOTS, ROLE_CANARY)


def role_of(slot: str) -> str:
    """The role a local slot serves: `stable-2` is a stable server."""
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}, expected one of {SLOTS}")
    return ROLE_STABLE if slot in STABLE_SLOTS else ROLE_CANARY


# --- Labels ------------------------------------------------------------------------------------
LABEL_MODEL_VERSION = "model_version"  # on every mlship_* service metric
LABEL_ROLE = "role"  # added by the scrape config (local) or pod label relabeling (Kubernetes)
LABEL_FEATURE = "feature"
LABEL_BIN = "bin"
LABEL_REASON = "reason"
LABEL_FIELD = "field"

# --- Service metrics (exported by bento/service.py) -------------------------------------------
# Histogram of predicted values; buckets come from the training target distribution, so every
# model version trained on the same data shares them and canary/stable can be compared bucket-wise.
METRIC_PREDICTION = "mlship_prediction_value"
# Cumulative share of the model's own training-set predictions at or below each `le` bucket.
METRIC_PREDICTION_REFERENCE = "mlship_prediction_reference_share"
# Counter of served feature values by training-reference bin (labels: feature, bin).
METRIC_FEATURE_BIN = "mlship_feature_bin_total"
# Gauge: share of the training data in each (feature, bin); the model carries its own reference.
METRIC_FEATURE_REFERENCE = "mlship_feature_reference_share"
# Counter of rejected inputs (labels: reason = pydantic error type, field = offending field).
METRIC_REJECTED = "mlship_rejected_inputs_total"
# Gauge = 1 with labels describing the loaded model (model_version, model_name, feature_version).
METRIC_MODEL_INFO = "mlship_model_info"
# Gauge: unix time the serving model was trained (staleness = time() - this).
METRIC_MODEL_TRAINED = "mlship_model_trained_timestamp_seconds"
# Age at which the model's measured staleness curve crosses its tolerance (only for models measured on
# timestamped data, `mlship model staleness`): ModelStale's limit for that model.
METRIC_MODEL_MAX_AGE = "mlship_model_max_age_seconds"
# Counter of predictions served (labels: model_version, endpoint).
METRIC_PREDICTIONS = "mlship_predictions_total"
# Training/serving skew: a sample of served rows is recomputed through the offline (training) feature
# pipeline; mismatches between the online and offline feature vectors are counted.
METRIC_SKEW_CHECKS = "mlship_skew_checks_total"
METRIC_SKEW_MISMATCHES = "mlship_skew_mismatches_total"
# Shadow phase (local environment, application-level mirroring done by the stable server):
# calls to the candidate (label result="ok"|"error") and |candidate - stable| per request.
METRIC_SHADOW_REQUESTS = "mlship_shadow_requests_total"
METRIC_SHADOW_ABS_DIFF = "mlship_shadow_abs_diff"

# Outcome feedback (mlship/feedback): outcomes joined to served predictions. Labelled with the version
# and role of the server that made the prediction (any server may receive its outcome). The role label
# is `prediction_role`: a scraped `role` would collide with the target's (honorLabels on Kubernetes).
LABEL_PREDICTION_ROLE = "prediction_role"
METRIC_OUTCOMES = "mlship_outcomes_total"  # outcomes joined to a prediction
METRIC_OUTCOME_SQUARED_ERROR = "mlship_outcome_squared_error_total"  # sum of (prediction - outcome)^2
METRIC_OUTCOME_ABS_ERROR = "mlship_outcome_abs_error"  # histogram of |prediction - outcome|
OUTCOME_ABS_ERROR_BUCKETS: tuple[float, ...] = (5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200)
# Counter of refused outcome submissions (labels: reason, field; reasons in mlship/feedback/validation.py).
METRIC_FEEDBACK_REJECTED = "mlship_feedback_rejected_total"
# Counter of served predictions not recorded because the recorder's queue was full.
METRIC_FEEDBACK_DROPPED = "mlship_feedback_predictions_dropped_total"
# Gauge: the held-out RMSE stored with the serving model (the offline estimate online RMSE is held to).
METRIC_MODEL_OFFLINE_RMSE = "mlship_model_offline_rmse"
# Counter of requests whose model answered a non-finite prediction (NaN/inf) at serving time (labels:
# model_version, endpoint): answered 500, never served; alert NonFinitePredictions (Monitor 5).
METRIC_NON_FINITE = "mlship_non_finite_total"

# BentoML's own metrics (names fixed by BentoML 1.4).
METRIC_BENTO_REQUESTS = "bentoml_service_request_total"
METRIC_BENTO_DURATION = "bentoml_service_request_duration_seconds"
# Buckets of that histogram, set by bento/service.py. One list for the service, the canary judge and the
# SLO rules: fine steps (about x1.5) where canary comparisons need resolution, and the round values people
# pick as SLO thresholds (a latency SLI counts the requests in the bucket ``le=threshold``).
# fmt: off
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0,
)
# fmt: on

# --- Router metrics (HAProxy's built-in Prometheus exporter, local environment) ----------------
HAPROXY_BACKEND = "model"  # backend (proxy label) holding the servers named after ROLES
METRIC_ROUTER_RESPONSES = "haproxy_server_http_responses_total"  # label code="1xx".."5xx","other"
METRIC_ROUTER_CONN_ERRORS = "haproxy_server_connection_errors_total"
METRIC_ROUTER_RESP_ERRORS = "haproxy_server_response_errors_total"
METRIC_ROUTER_WEIGHT = "haproxy_server_weight"
METRIC_ROUTER_STATUS = "haproxy_server_status"  # label state="UP"|"DOWN"|"MAINT"|...: 1 for the current

# --- Canary runner metrics (mlship/canary/publish.py) -----------------------------------------
# Counter: differences found between what the rollout says and the routing in effect (label result:
# repaired | failed), each logged in the rollout's reconciliation history (`mlship canary status`).
METRIC_CANARY_ROUTING_DIFFERENCES = "mlship_canary_routing_differences_total"
# Gauge: 1 while the routing in effect is the rollout's (possibly after a repair), 0 while paused
# because it could not be read or repaired.
METRIC_CANARY_ROUTING_IN_SYNC = "mlship_canary_routing_in_sync"

# --- Prometheus jobs ------------------------------------------------------------------------------
JOB_MODEL = "mlship-model"
JOB_ROUTER = "mlship-router"
JOB_PROMETHEUS = "prometheus"
JOB_NODE = "node-exporter"  # the name kube-prometheus-stack's node rules and dashboards select too

# --- HTTP API --------------------------------------------------------------------------------------
ENDPOINT_PREDICT = "/predict"
# Idle keep-alive connections between the local router and the model servers: the servers
# (`bentoml serve --timeout-keep-alive`) keep them open much longer than HAProxy keeps an idle pool
# (`pool-purge-delay`), so HAProxy never sends a request on a connection the server is closing.
SERVER_KEEP_ALIVE_S = 75
ROUTER_IDLE_POOL_S = 5
ENDPOINT_PREDICT_BATCH = "/predict_batch"
ENDPOINT_FEEDBACK = "/feedback"  # outcomes of served predictions (mlship/feedback/endpoint.py)
MAX_BATCH_SIZE = 1000
MAX_REQUEST_BYTES = 1_048_576  # enforced by the proxy (local) and the gateway (Kubernetes)
