from tests.conftest import Caller, commits


def test_upload_and_tree(alice: Caller, data_dir) -> None:
    folder = alice.folder("geology")
    script = alice.upload("a.py", folder_id=folder["id"])
    assert script["logical_path"] == "geology/a.py"
    tree = alice.tree()
    assert tree["root_folders"][0]["scripts"][0]["id"] == script["id"]
    assert commits(data_dir)[0]["subject"] == "Create script geology/a.py"
