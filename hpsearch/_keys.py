"""Every attribute key hpsearch stores on a study or a trial, written once and read from here."""

# Study user attributes
MANIFEST = "manifest"  # what the study was made with: versions, device, study file, data hash
SIGNATURE = "signature"  # every setting that shapes the search, for the change check
DATA_HASH = "data_hash"  # content hash of the training files the study reads
SPEC_CHANGES = "spec_changes"  # changes allowed on resume, each with its new study file
STUDY_FILE_HASH = "study_file_hash"
METRIC = "metric"  # valid_accuracy or valid_loss: what the trials' values are
TARGET_TRIALS = "target_trials"  # the study's total of finished trials
TRIALS_PER_ROUND = "narrowing_trials_per_round"  # a narrowing study's round length, fixed
TEST_RESULTS = "test_results"  # held-out results, keyed by trial number, evaluated once each

# Trial user attributes
HISTORY = "history"  # one record per epoch
EPOCHS = "epochs"
BEST_EPOCH = "best_epoch"
SECONDS = "seconds"
PRUNED_AT_EPOCH = "pruned_at_epoch"
ERROR = "error"  # a failed trial's exception, "Type: message"
SEED = "seed"
HOST = "host"
WORKER = "worker"  # the worker's tag (`run --workers`: w0, w1, ...; `worker`: host-pid)
DEVICE = "device"
THREADS = "threads"
WEIGHTS_ARTIFACT = "weights_artifact"  # the Optuna artifact id of the best epoch's weights
NARROWING_ROUND = "narrowing_round"
NARROWING_RANGES = "narrowing_ranges"
NARROWING_NOTES = "narrowing_notes"
ROUND_PREFIX = "narrowing_round:"  # + round number: a round's ranges on the study, written once

# Optuna's trial system attribute on a retry of a failed trial (RetryFailedTrialCallback)
RETRY_OF = "failed_trial"
