"""`edge run --record` / `--display`: LeRobot datasets v3.0 and the rerun live view, torch-free (extras
[record], [display]); see docs/recording.md."""
