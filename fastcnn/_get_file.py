"""``keras.utils.get_file``: a file from Keras's cache folder, downloaded there when absent (and a
network is reachable), its hash checked, archives extracted; with Keras's paths, so files Keras
has already downloaded on the machine are found without a network."""

import os
import tempfile
import warnings

# hashlib, tarfile, zipfile and urllib are imported where a file is hashed, extracted or fetched:
# together they cost ~45 ms, which `import fastcnn.datasets` and `fastcnn.utils` would otherwise pay.


def keras_home():
    """Keras's base folder: $KERAS_HOME, else ~/.keras (/tmp/.keras where the home folder is not
    writable), as keras.src.backend.config computes it."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    return os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")


def cache_folder(cache_subdir="datasets", cache_dir=None):
    """The folder get_file keeps `cache_subdir`'s files in (not created): under `cache_dir` (or
    Keras's home), or, as Keras does, under /tmp/.keras when that folder is missing or not writable."""
    base = os.path.expanduser(cache_dir if cache_dir is not None else keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return os.path.join(base, cache_subdir)


def _hasher(algorithm, file_hash):
    import hashlib

    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None and len(file_hash) == 64):
        return hashlib.sha256()
    return hashlib.md5()


def hash_file(path, algorithm="sha256", chunk_size=65535):
    hasher = _hasher(algorithm, None)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(path, file_hash, algorithm="auto"):
    algorithm = "sha256" if _hasher(algorithm, file_hash).name == "sha256" else "md5"
    return str(hash_file(path, algorithm)) == str(file_hash)


def _inside(root, member_path):
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(os.path.join(root, member_path))]) == root


def extract_archive(file_path, path=".", archive_format="auto"):
    """Extracts a tar (.tar, .tar.gz, .tar.bz2) or zip archive into `path`; True if it was one.
    Members that would land outside `path` (absolute paths, "..", links out) are refused."""
    import tarfile
    import zipfile

    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for kind in formats:
        if kind == "tar" and tarfile.is_tarfile(file_path):
            with tarfile.open(file_path) as archive:
                for member in archive.getmembers():
                    if not _inside(path, member.name) or (member.islnk() or member.issym()) and not _inside(
                            path, os.path.join(os.path.dirname(member.name), member.linkname)):
                        raise ValueError(f"Refusing to extract {member.name!r} from {file_path!r}: it would be "
                                         f"written outside {path!r}.")
                archive.extractall(path, filter="data") if hasattr(tarfile, "data_filter") else archive.extractall(path)
            return True
        if kind == "zip" and zipfile.is_zipfile(file_path):
            with zipfile.ZipFile(file_path) as archive:
                for name in archive.namelist():
                    if not _inside(path, name):
                        raise ValueError(f"Refusing to extract {name!r} from {file_path!r}: it would be written "
                                         f"outside {path!r}.")
                archive.extractall(path)
            return True
        if kind not in ("tar", "zip"):
            raise NotImplementedError(kind)
    return False


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Keras's get_file: the path of `fname` in the cache folder (`cache_dir` or Keras's home,
    then `cache_subdir`), downloaded from `origin` when it is not there (or its hash does not
    match `file_hash`); with `extract`, the folder it was extracted into. Offline, a missing file
    raises a ConnectionError that names the URL and the path to put the file at."""
    import urllib.error
    import urllib.parse
    import urllib.request

    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    folder = cache_folder(cache_subdir, cache_dir)
    os.makedirs(folder, exist_ok=True)
    provided = fname
    fname = os.fspath(fname) if fname is not None else ""
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'.Please specify the "
                             "`fname` argument.")
    elif os.sep in fname:
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the file's parent "
                         f"directory, use the `cache_dir` argument. Received: fname={fname}")
    extraction_dir = None
    if extract or untar:
        if provided and "." in fname:
            download_target = os.path.join(folder, fname)
            extraction_dir = os.path.join(folder, f"{fname[:fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(folder, fname)
            download_target = os.path.join(folder, f"{fname}_archive")
    else:
        download_target = os.path.join(folder, fname)

    if force_download:
        download = True
    elif os.path.exists(download_target):
        download = file_hash is not None and not validate_file(download_target, file_hash, hash_algorithm)
        if download:
            print(f"A local file was found, but it seems to be incomplete or outdated because the {hash_algorithm} "
                  f"file hash does not match the original value of {file_hash} so we will re-download the data.")
    elif extraction_dir is not None and os.path.isdir(extraction_dir):
        return extraction_dir  # extracted before and the archive since removed: nothing to fetch
    else:
        download = True
    if download:
        print(f"Downloading data from {origin}")
        partial = download_target + ".part"
        try:
            urllib.request.urlretrieve(origin, partial)
        except (urllib.error.URLError, OSError) as error:
            if os.path.exists(partial):
                os.remove(partial)
            reason = getattr(error, "reason", error)
            raise ConnectionError(f"URL fetch failure on {origin}: {reason}. Without network access, download the "
                                  f"file elsewhere and put it at {download_target}") from error
        os.replace(partial, download_target)
        if file_hash is not None and not validate_file(download_target, file_hash, hash_algorithm):
            raise ValueError(f"Incomplete or corrupted file detected. The {hash_algorithm} file hash does not match "
                             f"the provided value of {file_hash}.")
    if extraction_dir is not None:
        if not extract_archive(download_target, extraction_dir, "tar" if untar else archive_format):
            warnings.warn("Could not extract archive.", stacklevel=2)
        return extraction_dir
    return download_target
