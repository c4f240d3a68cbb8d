"""source=playlists: seed 004's CSV trio (and the JSON form) into the playlists table."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ingest.api import ingest
from ingest.source import SourceError
from lake import catalog


def write_trio(folder, info_sep="\t", song_sep=","):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gen_playlist_info.csv").write_text(info_sep.join(["glid", "listname", "tag_list"]) + "\n" + "\n".join(
        info_sep.join(r) for r in [("p1", "quiet piano", "calm"), ("p2", "run fast", "sport"),
                                   ("p3", "my playlist", ""), ("p4", "Adele", "")]) + "\n", encoding="utf-8")
    songs = [("p1", "s1"), ("p1", "s2"), ("p1", "s3"), ("p2", "s4"), ("p2", "s9"),  # s9: not in the song list
             ("p2", "s5", "extra"),                                                # malformed: 3 fields
             ("p3", "s1"), ("p4", "s2"), ("p7", "s1")]                             # p7: no title
    (folder / "gen_playlist_song.csv.sort").write_text(
        "special_gid,mixsongid\n" + "\n".join(song_sep.join(r) for r in songs) + "\n", encoding="utf-8")
    (folder / "gen_song_info.csv").write_text(
        "mixsongid;song_name;singer_name\ns1;Nocturne;Chopin\ns2;Hello;Adele\ns3;Gymnopedie;Satie\n"
        "s4;Run;Band\ns5;Faster;Band\n", encoding="utf-8")
    return folder


def test_csv_trio_ingests_and_reports_bad_row_unknown_song_and_untitled(tmp_path):
    result = ingest("pl", source="playlists", path=write_trio(tmp_path / "trio"))
    assert result.playlists == 2 and result.rows == 4   # p1 (3 songs), p2 (s4; s9 unknown, s5 malformed)
    text = "\n".join(result.problems)
    assert "gen_playlist_song.csv.sort:7: malformed row (3 fields, 2 expected)" in text
    assert "playlist p2: song s9 is not in gen_song_info.csv" in text
    assert "playlist p7: in the song file" in text
    assert result.counts["playlists with a title that says nothing"] == 2  # "my playlist", a bare artist
    assert result.without_audio == 4                    # no audio ingested: kept and counted
    rows = catalog.connect().sql(
        "SELECT playlist_id, title, position, track_id, song_title FROM playlists ORDER BY playlist_id, position").fetchall()
    assert rows == [("p1", "quiet piano", 0, "s1", "Nocturne"), ("p1", "quiet piano", 1, "s2", "Hello"),
                    ("p1", "quiet piano", 2, "s3", "Gymnopedie"), ("p2", "run fast", 0, "s4", "Run")]


def test_keep_unknown_and_min_songs(tmp_path):
    result = ingest("pl", source="playlists", path=write_trio(tmp_path / "trio"), keep_unknown=True, min_songs=3)
    assert result.playlists == 1 and result.counts["playlists under min_songs=3"] == 1
    result = ingest("pl", source="playlists", path=tmp_path / "trio", keep_unknown=True)
    assert result.rows == 5


def test_where_keeps_matching_playlists(tmp_path):
    result = ingest("pl", source="playlists", path=write_trio(tmp_path / "trio"), where="title LIKE '%piano%'")
    assert result.playlists == 1 and result.counts["playlists not matching where=title LIKE '%piano%'"] == 3
    with pytest.raises(SourceError, match="where="):
        ingest("pl", source="playlists", path=tmp_path / "trio", where="no_such_column = 1")


def test_header_required(tmp_path):
    folder = write_trio(tmp_path / "trio")
    (folder / "gen_song_info.csv").write_text("s1;Nocturne;Chopin\n", encoding="utf-8")
    with pytest.raises(SourceError, match="gen_song_info.csv: the header must name mixsongid"):
        ingest("pl", source="playlists", path=folder)


def test_json_form_and_cli(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"playlist_id": "a", "title": "focus", "tracks": ["t1", "t2"]},
                                {"playlist_id": "b", "title": "party", "tracks": ["t2"]}]))
    done = subprocess.run([sys.executable, "-m", "ingest", "dataset=pj", "source=playlists", f"path={path}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 playlists, 3 entries, 2 distinct songs (2 without audio" in done.stderr
    assert catalog.connect().execute("SELECT count(*) FROM playlists WHERE dataset = 'pj'").fetchone()[0] == 3
