"""Repo-root glue only: the rackval plugin itself is rackval.harness.plugin, loaded via its pytest11 entry point."""
