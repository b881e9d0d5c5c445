"""/api/announcements/: an org admin (or staff, for everyone) posts a note that every
member finds exactly once in their notification center."""

from __future__ import annotations

import pytest

from notifications.models import Announcement, Notification, Preference
from notifications.planning import announcement_dedup_key
from tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/announcements/"


@pytest.fixture
def org(team):
    return team.organization


@pytest.fixture
def admin(team, member_of):
    return member_of(team, role="admin")


@pytest.fixture
def client(api_client, admin):
    api_client.force_authenticate(admin)
    return api_client


def post(client, organization, **body):
    data = {"organization": organization.pk if organization else None, "title": "New: digests"}
    return client.post(URL, {**data, "body": "Daily digests are here.", **body}, format="json")


def announcements_of(user):
    return Notification.objects.filter(recipient=user, category="announcement")


def test_every_member_of_the_org_gets_it_once(client, team, org, admin, member_of):
    second_team = TeamFactory(organization=org)
    alice = member_of(team)
    both = member_of(team)
    second_team.memberships.create(user=both)
    bob = member_of(second_team)
    outsider = member_of(TeamFactory())

    response = post(client, org)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["title"], data["organization"], data["author"]) == (
        "New: digests",
        org.pk,
        admin.pk,
    )
    assert data["notified"] == 4  # admin, alice, both (once), bob

    for user in (admin, alice, both, bob):
        [row] = announcements_of(user)
        assert (row.title, row.body, row.actor_id) == (
            "New: digests",
            "Daily digests are here.",
            admin.pk,
        )
        assert row.dedup_key == announcement_dedup_key(announcement_id=data["id"], user_id=user.pk)
    assert announcements_of(both).get().team == team  # their first team in the org
    assert not announcements_of(outsider).exists()

    client.force_authenticate(alice)
    unread = client.get("/api/notifications/", {"category": "announcement"}).json()["results"]
    assert [n["title"] for n in unread] == ["New: digests"]


def test_people_who_switched_announcements_off_get_none(client, team, org, member_of):
    quiet = member_of(team)
    Preference.objects.create(user=quiet, channels={"announcement": {"in_app": False}})
    post(client, org)
    assert not announcements_of(quiet).exists()


def test_the_fan_out_is_bulk(client, team, org, member_of, django_assert_max_num_queries):
    for _ in range(40):
        member_of(team)
    with django_assert_max_num_queries(12):
        response = post(client, org)
    assert response.json()["notified"] == 41


def test_members_cannot_announce(api_client, team, org, member_of):
    api_client.force_authenticate(member_of(team))
    assert post(api_client, org).status_code == 403
    assert not Announcement.objects.exists()


def test_an_admin_cannot_announce_to_another_org_or_to_everyone(client, team, member_of):
    other = TeamFactory()
    member_of(other)
    assert post(client, other.organization).status_code == 400  # not theirs: no such org
    assert post(client, None).status_code == 403
    assert not Announcement.objects.exists()
    assert not Notification.objects.exists()


def test_staff_announce_to_everyone(api_client, team, member_of):
    staff = UserFactory(is_staff=True)
    members = [member_of(team), member_of(TeamFactory()), member_of(TeamFactory())]
    UserFactory()  # in no team: no inbox to put it in
    api_client.force_authenticate(staff)
    response = post(api_client, None, title="Scheduled maintenance")
    assert response.status_code == 201, response.json()
    assert response.json()["notified"] == 3
    for user in members:
        assert announcements_of(user).get().title == "Scheduled maintenance"


def test_the_list_shows_what_the_caller_may_see(client, team, org, admin):
    ours = post(client, org).json()["id"]
    everyone = Announcement.objects.create(organization=None, title="For all")
    theirs = Announcement.objects.create(organization=TeamFactory().organization, title="Secret")

    listed = [a["id"] for a in client.get(URL).json()["results"]]
    assert listed == [everyone.pk, ours]
    assert client.get(f"{URL}{ours}/").json()["author_name"]
    assert client.get(f"{URL}{theirs.pk}/").status_code == 404


def test_title_is_required(client, org):
    response = client.post(URL, {"organization": org.pk}, format="json")
    assert response.json() == {"title": ["This field is required."]}
