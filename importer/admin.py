"""The operators' view of what was imported: where each session came from, its votes, and the
imported sessions deleted here (deleting one of those lets the next import bring it back)."""

from django.contrib import admin

from .models import DeletedHere, ImportedSession, SessionVote


@admin.register(ImportedSession)
class ImportedSessionAdmin(admin.ModelAdmin):
    list_display = ("session", "stores", "source_status", "source_phase", "last_imported_at")
    list_filter = ("stores", "source_status")
    search_fields = ("session__id", "source_user_id")
    readonly_fields = [f.name for f in ImportedSession._meta.fields]
    list_select_related = ("session",)

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False  # the record goes with its session


@admin.register(SessionVote)
class SessionVoteAdmin(admin.ModelAdmin):
    list_display = ("session", "persona_name", "recommendation", "confidence", "created_at")
    search_fields = ("session__id", "persona_code", "persona_name")
    readonly_fields = [f.name for f in SessionVote._meta.fields]
    list_select_related = ("session",)

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(DeletedHere)
class DeletedHereAdmin(admin.ModelAdmin):
    list_display = ("session_id", "source_user_id", "deleted_at")
    search_fields = ("session_id", "source_user_id")
    readonly_fields = [f.name for f in DeletedHere._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
