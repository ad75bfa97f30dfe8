"""Factories for users and sessions."""

import factory
from django.contrib.auth import get_user_model

from sessions_app.models import DeliberationSession


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    # Hashed before the insert (a post-generation set_password would never be saved, which
    # breaks password logins and invalidates force_login sessions on their next request).
    password = factory.django.Password("secret-pass-123")


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeliberationSession

    user = factory.SubFactory(UserFactory)
    problem_statement = factory.Sequence(lambda n: f"Should we open office number {n} this year?")
