"""Load a few demo petitions into an empty catalogue: ``python -m paraphe_petition_catalog.demo``.

For ``make run`` only. It does nothing when the catalogue already holds petitions.
"""

from __future__ import annotations

import asyncio

import asyncpg

from paraphe_common.settings import PostgresSettings, load_settings

DEMO_AUTHOR = ("demo-author", "Camille", "Durand")

# Title, text and committee (its id in paraphe_common.committees).
DEMO_PETITIONS = (
    (
        "Pour un accès gratuit aux transports en commun pour les moins de 26 ans",
        "Les jeunes de moins de 26 ans consacrent une part croissante de leur budget aux "
        "déplacements.\n\nNous demandons la gratuité des transports en commun pour eux, "
        "financée par l'État et les autorités organisatrices de la mobilité.",
        "developpement-durable",
    ),
    (
        "Rendre obligatoire l'apprentissage des premiers secours au collège",
        "Chaque année, des milliers de vies pourraient être sauvées par des gestes simples."
        "\n\nNous demandons que chaque élève de troisième soit formé aux premiers secours.",
        "affaires-culturelles",
    ),
    (
        "Interdire la destruction des invendus alimentaires dans la grande distribution",
        "Des tonnes de denrées consommables sont jetées chaque jour.\n\nNous demandons "
        "l'obligation de don aux associations pour toutes les surfaces de vente.",
        "affaires-economiques",
    ),
)


async def load_demo_petitions(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            if await connection.fetchval("SELECT count(*) FROM catalog.petitions"):
                return 0  # a catalogue that holds anything is not a demo's to fill
            await connection.execute(
                "INSERT INTO catalog.authors (id, given_names, family_name) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO NOTHING",
                *DEMO_AUTHOR,
            )
            for days_ago, (title, body, committee) in enumerate(DEMO_PETITIONS):
                await connection.execute(
                    """
                    INSERT INTO catalog.petitions (author_id, title, body, status, committee,
                        created_at, submitted_at, published_at, closes_at)
                    SELECT $1, $2, $3, 'published', $4, at, at, at, at + interval '6 months'
                    FROM (SELECT now() - make_interval(days => $5) AS at) AS t
                    """,
                    DEMO_AUTHOR[0],
                    title,
                    body,
                    committee,
                    days_ago,
                )
        return len(DEMO_PETITIONS)
    finally:
        await connection.close()


def main() -> None:
    settings = load_settings(PostgresSettings)
    asyncio.run(load_demo_petitions(settings.database_url.get_secret_value()))


if __name__ == "__main__":
    main()
