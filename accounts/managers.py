from django.contrib.auth.base_user import BaseUserManager


def normalize_email_address(email: str) -> str:
    """The one spelling of an email address we store and look up: trimmed, lower case."""
    return email.strip().lower()


class UserManager(BaseUserManager):
    """Users log in with their email address; it is matched case-insensitively."""

    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(email__iexact=normalize_email_address(username))

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("Users must have an email address.")
        user = self.model(email=normalize_email_address(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser must have is_staff and is_superuser set.")
        return self._create_user(email, password, **extra_fields)
