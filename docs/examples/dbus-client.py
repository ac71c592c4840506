#!/usr/bin/python3
"""A desktop updater's use of seamless's system-bus API (python3-dbus).

  dbus-client.py            show what an update would keep running, and the last outcome
  dbus-client.py --update   update now (polkit may ask for a password), follow the progress
  dbus-client.py --update --dry-run   only check that the update can be made
"""
import sys

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

NAME = "io.github.seamless_linux.Seamless1"
PATH = "/io/github/seamless_linux/Seamless1"

DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
obj = bus.get_object(NAME, PATH)
seamless = dbus.Interface(obj, NAME)
props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")


def show():
    p = props.GetAll(NAME)
    print(f"running {p['RunningKernel']}, newer installed: {p['PendingKernel'] or 'none'}, state {p['State']}")
    for unit, carried, reason, preserved_by, size in seamless.Plan():
        print(f"  {unit}: " + (f"kept running ({size >> 20} MiB)" if carried else f"restarted: {reason}"))
    if p["LastUpdateResult"]:
        kept = [u for u, outcome, _pid, _why in p["LastUpdateUnits"] if outcome == "restored"]
        print(f"last update {p['LastUpdateFrom']} -> {p['LastUpdateTo']}: {p['LastUpdateResult']}; "
              f"kept running: {', '.join(kept) or 'none'}")


def update():
    loop = GLib.MainLoop()
    result = {}

    def progress(phase, fraction, message):
        print(f"[{fraction:4.0%}] {phase}: {message}")

    def finished(outcome, message):
        result["outcome"] = outcome
        print(f"{outcome}: {message}")
        loop.quit()

    bus.add_signal_receiver(progress, "Progress", NAME, NAME, PATH)
    bus.add_signal_receiver(finished, "UpdateFinished", NAME, NAME, PATH)
    # Interactive: polkit asks for a password through the session's agent.
    try:
        seamless.Update({"dry-run": "--dry-run" in sys.argv}, signature="a{sv}",
                        dbus_interface=NAME, timeout=120)
    except dbus.DBusException as e:
        print(f"refused: {e.get_dbus_name()}: {e.get_dbus_message()}")
        return False
    loop.run()
    return result.get("outcome") in ("switching", "checked")


if __name__ == "__main__":
    if "--update" in sys.argv:
        sys.exit(0 if update() else 1)
    show()
