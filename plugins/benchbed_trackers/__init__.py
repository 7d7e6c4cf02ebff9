"""benchbed built-in plugin: experiment trackers.

* :mod:`~benchbed_trackers.tensorboard`: ``tensorboard``, event files under the tracking folder
  (needs ``pip install 'benchbed[tensorboard]'``).
* :mod:`~benchbed_trackers.mlflow_tracker`: ``mlflow``, one MLflow run per cell in the suite's
  experiment (needs ``pip install 'benchbed[mlflow]'``).

The libraries are imported when a cell is tracked, never when the plugin loads.
"""
