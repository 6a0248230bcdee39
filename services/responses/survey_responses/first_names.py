"""First names people often type in a verbatim (« merci à Sophie », « Jean Dupont m'a reçu »), for
the redaction of person names (issue #17). About 370 of the most frequent first names in France
across generations, written from general knowledge for the project (no download, no registry),
in their usual spelling; the redaction compares them without case or accents.

A first name that is also a common French word (« Pierre », « Rose », « jean », « manuel ») is in
`HOMOGRAPHS`: alone, it is a name only capitalised inside a sentence (« merci à Claire »), not in
lower case nor at a sentence start (« Rose et verte, la façade »).
"""

from __future__ import annotations

# fmt: off
FIRST_NAMES: tuple[str, ...] = (
    "Marie", "Jeanne", "Françoise", "Monique", "Catherine", "Nathalie", "Isabelle", "Sylvie",
    "Anne", "Martine", "Christine", "Nicole", "Sophie", "Valérie", "Sandrine", "Véronique",
    "Christiane", "Jacqueline", "Brigitte", "Stéphanie", "Céline", "Chantal", "Aurélie", "Julie",
    "Camille", "Laura", "Sarah", "Emma", "Léa", "Manon", "Chloé", "Inès", "Jade", "Louise",
    "Alice", "Lina", "Rose", "Anna", "Mila", "Ambre", "Julia", "Léna", "Zoé", "Lucie", "Juliette",
    "Clara", "Lola", "Pauline", "Marine", "Mathilde", "Charlotte", "Océane", "Émilie", "Élodie",
    "Audrey", "Caroline", "Virginie", "Laetitia", "Karine", "Corinne", "Patricia", "Laurence",
    "Florence", "Hélène", "Agnès", "Claire", "Annie", "Danielle", "Josiane", "Dominique", "Claude",
    "Michèle", "Michelle", "Denise", "Madeleine", "Simone", "Suzanne", "Yvette", "Paulette",
    "Colette", "Ginette", "Odette", "Huguette", "Germaine", "Marguerite", "Thérèse", "Geneviève",
    "Bernadette", "Évelyne", "Joëlle", "Muriel", "Pascale", "Fabienne", "Carole", "Delphine",
    "Séverine", "Amandine", "Mélanie", "Marion", "Elsa", "Anaïs", "Morgane", "Justine", "Margaux",
    "Margot", "Eva", "Léonie", "Agathe", "Victoire", "Capucine", "Romane", "Louna", "Nina",
    "Maëlle", "Élise", "Adèle", "Jeannine", "Josette", "Lucienne", "Yvonne", "Raymonde", "Solange",
    "Arlette", "Béatrice", "Éliane", "Mireille", "Nadine", "Gisèle", "Marcelle", "Hélèna",
    "Cécile", "Laure", "Aline", "Myriam", "Sabrina", "Vanessa", "Jessica", "Cindy", "Alexandra",
    "Jennifer", "Émeline", "Coralie", "Fatima", "Amina", "Nadia", "Samira", "Karima", "Leila",
    "Yasmine", "Sonia", "Malika", "Naïma", "Rachida", "Khadija", "Aïcha", "Fatou", "Aminata",
    "Mariam", "Sofia", "Ines", "Rania", "Salma", "Maria", "Ana", "Paula", "Lucia", "Fanny",
    "Gaëlle", "Noémie", "Ophélie", "Clémence", "Estelle", "Axelle", "Jocelyne", "Annick", "Régine",
    "Lydie", "Blanche", "Mathilda", "Iris", "Jasmine", "Alicia", "Angélique", "Vinciane", "Cloé",
    "Chloe", "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Bernard", "Jacques",
    "Daniel", "Christian", "Patrick", "Nicolas", "Christophe", "Frédéric", "Éric", "Laurent",
    "Stéphane", "Pascal", "David", "Sébastien", "Julien", "Thomas", "Olivier", "Gérard",
    "François", "Thierry", "Jean-Pierre", "Jean-Claude", "Jean-Luc", "Jean-Marc", "Jean-Paul",
    "Jean-François", "Jean-Louis", "Jean-Michel", "Jean-Jacques", "Marc", "Paul", "Louis", "Henri",
    "Robert", "René", "Roger", "Marcel", "Georges", "Maurice", "Raymond", "Lucien", "Joseph",
    "Jacky", "Gilles", "Didier", "Serge", "Yves", "Guy", "Jackie", "Bruno", "Vincent", "Franck",
    "Denis", "Hervé", "Jérôme", "Antoine", "Benoît", "Guillaume", "Mathieu", "Matthieu", "Cédric",
    "Romain", "Anthony", "Jérémy", "Kévin", "Maxime", "Alexandre", "Florian", "Benjamin", "Adrien",
    "Quentin", "Clément", "Hugo", "Lucas", "Léo", "Gabriel", "Raphaël", "Arthur", "Jules", "Adam",
    "Maël", "Noah", "Ethan", "Nathan", "Théo", "Tom", "Sacha", "Mohamed", "Mohammed", "Ahmed",
    "Ali", "Karim", "Rachid", "Mustapha", "Mehdi", "Youssef", "Yassine", "Bilal", "Hamza", "Omar",
    "Samir", "Farid", "Abdel", "Abdelkader", "Moussa", "Mamadou", "Ibrahim", "Ousmane", "Amadou",
    "Issa", "Sofiane", "Nabil", "Rayan", "Ilyes", "Kylian", "Enzo", "Mathis", "Baptiste",
    "Valentin", "Victor", "Martin", "Simon", "Samuel", "Aurélien", "Damien", "Fabrice", "Ludovic",
    "Arnaud", "Xavier", "Emmanuel", "Lionel", "Régis", "Fabien", "Loïc", "Yannick", "Jonathan",
    "Grégory", "Mickaël", "Michaël", "Tony", "Steve", "Dylan", "Alexis", "Albert", "Gaston",
    "Émile", "Fernand", "Marius", "Léon", "Charles", "Édouard", "Gilbert", "Roland", "Joël",
    "Noël", "Patrice", "Sylvain", "Gaël", "Yann", "Erwan", "Tristan", "Bastien", "Jordan", "Axel",
    "Timothée", "Gaspard", "Augustin", "Félix", "Oscar", "Marceau", "Ange", "Max", "Sami", "Malik",
    "Karl", "Manuel", "José", "Antonio", "Carlos", "Luis", "Miguel", "Paulo", "Giovanni", "Marco",
)

# First names that are also ordinary French words (a colour, a stone, a feast, a garment...).
HOMOGRAPHS: tuple[str, ...] = (
    "Rose", "Pierre", "Blanche", "Noël", "Ambre", "Jade", "Marine", "Victoire", "Claire", "Ange",
    "Max", "Iris", "Capucine", "Jasmine", "Constance", "Prudence", "Grâce", "Espérance", "Fleur",
    "Olive", "Jean", "Manuel", "Marguerite",
)
# fmt: on
