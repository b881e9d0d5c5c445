from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from notifications.services import notification_inbox

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
