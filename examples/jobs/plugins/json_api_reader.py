"""Seed 003's paginated JSON API reader, as written there, with etl_platform's base class."""

from typing import Any, Dict, Iterator, List

import requests

from etl_platform.plugins import BaseReader


class JSONAPIReader(BaseReader):
    """Read from paginated JSON API."""

    def extract(self, state_manager=None) -> Iterator[List[Dict[str, Any]]]:
        base_url = self.source_config.connection.get("base_url")
        headers = {
            "Authorization": f"Bearer {self.source_config.credentials.get('token')}"
        }

        page = 1
        page_size = self.source_config.engine.get("options", {}).get("page_size", 100)

        while True:
            response = requests.get(
                f"{base_url}/data",
                params={"page": page, "page_size": page_size},
                headers=headers,
                timeout=30,
            )
            response.raise_for_status()

            data = response.json()
            records = data.get("items", [])

            if not records:
                break

            yield records

            if not data.get("has_next"):
                break

            page += 1
