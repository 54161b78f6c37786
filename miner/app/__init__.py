"""The application: typed settings, the command line, the one composition root, doctor and bench."""
