"""browser.terminal: the listing command the terminal step types and how its output is read."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from eks_hub_runbook.browser import terminal
from eks_hub_runbook.errors import RunbookError


def test_terminal_escape_sequences_are_removed():
    assert terminal.clean("\x1b[?2004h\x1b]0;jovyan@pod: ~\x07\x1b[01;32mok\x1b[00m\r\n") == "ok\n"
    assert terminal.clean("\x1b(Bplain\x1b=\x1b>\x1b]2;title\x1b\\ text") == "plain text"


def test_listing_parser_reads_ls_output():
    output = "jovyan:\n.bashrc\nnotes.txt\n\nshared:\nhello.txt\n"
    assert terminal.parse_listing(output, ["jovyan", "shared"]) == {
        "jovyan": [".bashrc", "notes.txt"], "shared": ["hello.txt"]}
    assert terminal.parse_listing("a\nb\n", ["jovyan"]) == {"jovyan": ["a", "b"]}
    with pytest.raises(RunbookError, match="No such file"):
        terminal.parse_listing("ls: cannot access 'shared': No such file or directory\njovyan:\n", ["jovyan", "shared"])


def test_listing_parser_keeps_empty_folders_and_ignores_lines_before_a_header():
    assert terminal.parse_listing("stray\njovyan:\n\nshared:\n", ["jovyan", "shared"]) == {"jovyan": [], "shared": []}
    # a file named like another header is an entry of the folder it is in
    assert terminal.parse_listing("jovyan:\nother:\n", ["jovyan", "shared"]) == {"jovyan": ["other:"], "shared": []}


def test_every_unreadable_folder_is_named():
    output = "ls: cannot access 'a': No such file or directory\nls: cannot open directory 'b': Permission denied\n"
    with pytest.raises(RunbookError) as failure:
        terminal.parse_listing(output, ["a", "b"])
    assert str(failure.value) == ("listing the folders failed: ls: cannot access 'a': No such file or directory; "
                                  "ls: cannot open directory 'b': Permission denied")


def test_listed_folders_are_named_by_their_path_in_the_pod():
    assert terminal.display_path("jovyan") == "/home/jovyan"
    assert terminal.display_path("/mnt/data") == "/mnt/data"
    assert [terminal.display_path(d) for d in terminal.DEFAULT_DIRECTORIES] == ["/home/jovyan", "/home/shared"]


def test_the_listing_command_starts_under_the_home_parent_for_relative_folders():
    command = terminal.listing_command(["jovyan", "shared"], "walkthrough-0a1b2c3d")
    assert command == ('echo "walkthrough-0a1b2c3d"-begin; cd "$HOME/.." && ls -1A jovyan shared; '
                       'echo "walkthrough-0a1b2c3d"-end')
    assert "cd " not in terminal.listing_command(["/home/jovyan", "/tmp"], "m")
    assert "cd " in terminal.listing_command(["/tmp", "shared"], "m")


def test_the_listing_command_quotes_folder_names():
    command = terminal.listing_command(["my files", "it's"], "m")
    assert shlex.split(command.split("ls -1A ", 1)[1].split(";", 1)[0]) == ["my files", "it's"]


def test_markers_are_fresh_words():
    first, second = terminal.new_marker(), terminal.new_marker()
    assert re.fullmatch(r"walkthrough-[0-9a-f]{8}", first) and first != second


def test_only_the_command_output_counts_not_its_echo():
    mark = "walkthrough-12345678"
    prompt = "\x1b[?2004h\x1b]0;jovyan@pod: ~\x07\x1b[01;32mjovyan@pod\x1b[00m:~$ "
    echoed = prompt + terminal.listing_command(["jovyan", "shared"], mark) + "\r\n"
    # the echoed command line holds "walkthrough-..."-end with a quote inside: not the end marker
    assert not terminal.command_finished(echoed, mark)
    stdout = echoed + f"{mark}-begin\r\njovyan:\r\n.bashrc\r\n\r\nshared:\r\nhello.txt\r\n{mark}-end\r\n" + prompt
    assert terminal.command_finished(stdout, mark)
    body = terminal.command_output(stdout, mark)
    assert body == "jovyan:\n.bashrc\n\nshared:\nhello.txt"
    assert terminal.parse_listing(body, ["jovyan", "shared"]) == {"jovyan": [".bashrc"], "shared": ["hello.txt"]}


def test_terminal_websocket_frames():
    assert terminal.is_terminal_websocket("ws://127.0.0.1:8000/user/user-1/terminals/websocket/1")
    assert not terminal.is_terminal_websocket("ws://127.0.0.1:8000/user/user-1/api/kernels/abc/channels")
    assert terminal.stdout_text(json.dumps(["stdout", "ls\r\n"])) == "ls\r\n"
    assert terminal.stdout_text(json.dumps(["stdout", "bytes"]).encode()) == "bytes"
    assert terminal.stdout_text(json.dumps(["setup", {}])) is None
    assert terminal.stdout_text(json.dumps(["stdout"])) is None
    assert terminal.stdout_text(json.dumps({"stdout": "x"})) is None
    assert terminal.stdout_text("not json") is None
    assert terminal.stdout_text(None) is None  # type: ignore[arg-type]


def test_df_output_is_read_as_mount_points_and_file_systems():
    output = """Filesystem                              Size  Used Avail Use% Mounted on
overlay                                  12G   44K   12G   1% /
fs-0abc.efs.us-west-2.amazonaws.com:/  252G   24G   79G  23% /home/jovyan
fs-0abc.efs.us-west-2.amazonaws.com:/  252G   24G   79G  23% /home/shared
"""
    assert terminal.parse_df(output) == {"/": "overlay", "/home/jovyan": "fs-0abc.efs.us-west-2.amazonaws.com:/",
                                         "/home/shared": "fs-0abc.efs.us-west-2.amazonaws.com:/"}
    assert terminal.parse_df("") == {}
    assert terminal.marked(terminal.STORAGE_COMMAND, "m") == 'echo "m"-begin; df -h; echo "m"-end'
