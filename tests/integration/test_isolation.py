"""Each test gets a fresh database: the first test commits, the second must not see it.

The two tests run in file order (pytest keeps definition order); the second would
fail if the first one's committed row leaked into it.
"""

from sqlalchemy import func, select

from partnernet.accounts.models import Merchant
from tests.factories import make_merchant


def test_commits_a_merchant(db_session):
    make_merchant(name="Leaky Shop")
    assert db_session.scalar(select(func.count()).select_from(Merchant)) == 1


def test_does_not_see_the_previous_tests_merchant(db_session):
    assert db_session.scalar(select(func.count()).select_from(Merchant)) == 0
    assert db_session.scalar(select(Merchant).where(Merchant.name == "Leaky Shop")) is None
