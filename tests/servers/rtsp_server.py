#!/usr/bin/python3
"""A real RTSP server for the stream tests: GStreamer's rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0, through python3-gi) on 127.0.0.1 only, serving an H.264 mp4
without re-encoding at CLIP's own pace, at rtsp://127.0.0.1:PORT/MOUNT.

    rtsp_server.py CLIP MOUNT LIFETIME_SECONDS [USER PASSWORD]

Prints `ready PORT` (a free port it chose) once it listens, and exits after
LIFETIME_SECONDS whatever happens, so a test that dies cannot leave it running. With USER
and PASSWORD, the mount asks for them (HTTP basic authentication).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    clip, mount, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
    credentials = sys.argv[4:6]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={clip} ! qtdemux ! h264parse "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    if credentials:
        user, password = credentials
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.from_string(
                "viewer, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )[0]
        )
    server.get_mount_points().add_factory("/" + mount, factory)
    if server.attach(None) == 0:
        sys.exit("cannot listen on 127.0.0.1")
    print(f"ready {server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.timeout_add(int(lifetime * 1000), loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
