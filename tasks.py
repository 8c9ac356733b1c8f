"""invoke tasks: the namespace is assembled from one small module per concern in tasklib/."""

from invoke import Collection

from tasklib import bench, container, demo, k8s, pictures, quality

ns = Collection()
for module in (demo, quality, bench, container, k8s, pictures):
    for task in module.TASKS:
        ns.add_task(task)
ns.configure({"run": {"echo": False, "pty": False}})
