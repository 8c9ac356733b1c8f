"""Alert delivery in the lab: the Alertmanager webhook receiver and the notification history."""
