"""Monitoring: the champion's reference profile, daily drift reports computed in Spark and their check, the
sensor that launches retraining when a report recommends it, and the labelled re-run of a report. Each module
exports its own ``defs``; import names from the module that defines them."""
