"""Training: the teacher-student model, methods, losses, schedules, callbacks, distribution, experiments."""
