"""First names given to children born in England and Wales 2005-2022, most popular first (after the ONS baby-name
tables). Faker's ``en_GB`` first names are a sample of the whole adult population ("Sheila", "Irene"), which looks
wrong on a Reception register, so most pupils' forenames come from here and the rest (and middle names) from Faker.
"""

from __future__ import annotations

BOYS_NAMES = (
    "Oliver", "Jack", "Harry", "George", "Noah", "Charlie", "Jacob", "Alfie", "Freddie", "Oscar", "Leo", "Arthur",
    "Thomas", "William", "James", "Joshua", "Henry", "Theo", "Archie", "Max", "Isaac", "Lucas", "Ethan", "Teddy",
    "Finley", "Muhammad", "Joseph", "Alexander", "Daniel", "Samuel", "Logan", "Edward", "Dylan", "Harrison", "Riley",
    "Adam", "Luca", "Jaxon", "Reggie", "Tommy", "Albie", "Louie", "Benjamin", "Sebastian", "Toby", "Jude", "Rory",
    "Ronnie", "Elijah", "Ryan", "Lewis", "Tyler", "Mason", "Jayden", "Callum", "Matthew", "Luke", "Jake", "Kai",
    "Liam", "Reuben", "Ollie", "Hugo", "Ellis", "Zachary", "Frankie", "Stanley", "Bobby", "Harley", "Finn",
)  # fmt: skip

GIRLS_NAMES = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Isabella", "Rosie", "Sophia", "Grace", "Freya",
    "Florence", "Willow", "Evie", "Ella", "Poppy", "Emily", "Sophie", "Jessica", "Chloe", "Ruby", "Charlotte", "Daisy",
    "Phoebe", "Isabelle", "Millie", "Evelyn", "Sienna", "Matilda", "Elsie", "Harper", "Ellie", "Holly", "Lucy", "Erin",
    "Scarlett", "Maisie", "Lola", "Imogen", "Megan", "Hannah", "Lexi", "Eva", "Layla", "Aria", "Bella", "Esme", "Maya",
    "Summer", "Mollie", "Amber", "Georgia", "Emma", "Niamh", "Eliza", "Violet", "Alice", "Harriet", "Thea", "Lilly",
    "Darcie", "Nancy", "Emilia", "Orla", "Zara",
)  # fmt: skip
