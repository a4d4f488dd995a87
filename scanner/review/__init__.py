"""The local review page (`cos-scanner review`)."""
