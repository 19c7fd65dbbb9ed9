"""Who coverage expects: only CHT users who write target docs (offline users whose roles
may view tasks or analytics), judged from the roles CHT writes into user-settings."""

from __future__ import annotations

import pytest

from mediator.engine.mapping import writes_targets

SETTINGS = {
    "roles": {
        "chw": {"name": "CHW", "offline": True},
        "supervisor": {"name": "Supervisor", "offline": True},
        "dhis2_integration": {"name": "DHIS2 integration"},
    },
    "permissions": {
        "can_view_tasks": ["chw"],
        "can_view_analytics": ["chw", "national_admin"],
        "can_export_all": ["national_admin"],
    },
}


@pytest.mark.parametrize(
    ("roles", "writes"),
    [
        (["chw"], True),  # offline, may view tasks: runs the rules engine
        (["supervisor"], False),  # offline without either permission
        (["dhis2_integration", "mm-online"], False),  # the mediator's own, online user
        (["national_admin", "mm-online"], False),  # online admin app user
        (["_admin"], False),  # a CouchDB admin is online
        (None, True),  # a doc without roles (made by hand): cannot tell, counted
    ],
)
def test_only_offline_users_with_task_or_analytics_permission_are_expected(roles, writes):
    assert writes_targets(roles, SETTINGS) is writes


def test_settings_without_permissions_count_every_offline_user():
    assert writes_targets(["chw"], {"roles": SETTINGS["roles"]}) is True
    assert writes_targets(["chw", "mm-online"], {}) is False
