from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from notifications.services import notification_inbox
from notifications.unsubscribe import preference_unsubscribe

PAGE_SIZE = 50


@login_required
def notification_center(request):
    inbox = notification_inbox(user=request.user).filter(archived_at__isnull=True)
    return render(
        request,
        "frontend/notification_center.html",
        {
            "notifications": inbox.select_related("team")[:PAGE_SIZE],
            "unread_count": inbox.filter(read_at__isnull=True).count(),
        },
    )


@csrf_exempt
def unsubscribe(request, token):
    """The email footer's link (GET) and RFC 8058 one-click (POST): applied without login."""
    applied = preference_unsubscribe(token=token)
    if applied is None:
        return render(request, "frontend/unsubscribe.html", {"invalid": True}, status=400)
    if request.method == "POST":
        return HttpResponse("unsubscribed", content_type="text/plain")
    if request.user.is_authenticated and request.user.pk == applied.user_id:
        return redirect(f"/preferences/?unsubscribed={applied.category}:{applied.channel}")
    return render(request, "frontend/unsubscribe.html", {"applied": applied})
