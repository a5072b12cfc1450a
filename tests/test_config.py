"""Configuration: one TOML file, validated, errors that name the key."""

from pathlib import Path

import pytest

from lucerag.config import Config, ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lucerag.toml"
    path.write_text(text)
    return path


def test_full_configuration_round_trips(tmp_path):
    path = _write(tmp_path, """
[index]
path = "indexes/docs"
[encoder]
threads = 2
[bm25]
k1 = 1.2
b = 0.75
[dense]
ef_search = 200
[fusion]
method = "rrf"
rrf_k = 30
depth = 50
[search]
k = 5
""")
    config = Config.load(path)
    assert config.index.path == (tmp_path / "indexes" / "docs").resolve()  # relative to the file
    assert (config.bm25.k1, config.bm25.b, config.dense.ef_search) == (1.2, 0.75, 200)
    assert (config.fusion.method, config.fusion.rrf_k, config.search.k) == ("rrf", 30, 5)
    again = Config.load(_write(tmp_path, config.to_toml()))
    assert again == config


def test_defaults_need_only_an_index(tmp_path):
    config = Config.load(_write(tmp_path, '[index]\npath = "/srv/idx"\n'))
    assert config.fusion.method == "anchored" and config.search.k == 10 and config.encoder.model == "default"


def test_two_anserini_indexes(tmp_path):
    config = Config.load(_write(tmp_path, '[index]\nbm25_path = "/a"\ndense_path = "/b"\n'))
    assert (config.index.bm25, config.index.dense) == (Path("/a"), Path("/b"))


@pytest.mark.parametrize("text, message", [
    ('[index]\npath = "x"\ncolour = "red"\n', "unknown key 'index.colour'"),
    ('[index]\npath = "x"\n[fusion]\nweight = 0.5\n', "unknown key 'fusion.weight'"),
    ('[index]\npath = "x"\n[bm25]\nb = 3\n', "'bm25.b'"),
    ('[index]\npath = "x"\n[fusion]\nmethod = "max"\n', "'fusion.method'"),
    ('[index]\npath = "x"\n[search]\nk = 0\n', "'search.k'"),
    ('[index]\npath = "x"\n[jvm]\nheap = "4"\n', "'jvm.heap'"),
    ('[encoder]\nthreads = 1\n', "'index'"),
    ('[index]\npath = "a"\nbm25_path = "b"\n', "not both"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        Config.load(_write(tmp_path, text))
    assert str(tmp_path / "lucerag.toml") in str(err.value)


def test_corrupt_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.load(_write(tmp_path, "[index\npath = \n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        Config.load(tmp_path / "nope.toml")


def test_a_lower_max_k_alone_lowers_the_default_k_but_an_explicit_k_above_it_is_an_error():
    """Setting only [limits] max_k = 5 failed with "search.k (10) is above limits.max_k (5)"."""
    assert Config.model_validate({"index": {"path": "idx"}, "limits": {"max_k": 5}}).search.k == 5
    assert Config.model_validate({"index": {"path": "idx"}}).search.k == 10  # the default is not shared
    with pytest.raises(ValueError, match=r"search.k \(10\) is above limits.max_k \(5\)"):
        Config.model_validate({"index": {"path": "idx"}, "limits": {"max_k": 5}, "search": {"k": 10}})


def test_a_corrupt_index_manifest_names_the_file_and_the_remedy(tmp_path):
    from lucerag.index.manifest import IndexManifest

    (tmp_path / "lucerag.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"lucerag\.json: unreadable index manifest .*rebuild the index"):
        IndexManifest.read(tmp_path)
