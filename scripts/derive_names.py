#!/usr/bin/env python3
"""Derive the PHI name detector's dictionaries from the 1990 US Census lists.

Usage (from the repo root, with the shared folder at ../shared):

    python3 scripts/derive_names.py
    python3 scripts/derive_names.py --census ../shared/data/census-1990-names \
        --out rules/hipaa/names [--words /usr/share/dict/american-english]

Stdlib only. The output is deterministic: it depends only on the input files
(every output list is sorted, no timestamps are written).

Inputs
------
* 1990 US Census "Frequently Occurring Surnames and First Names" (public
  domain, U.S. Census Bureau): dist.all.last (88,799 surnames),
  dist.female.first (4,275), dist.male.first (1,219). Each line is
  `NAME freq% cumfreq% rank`, names upper-case ASCII with no spaces,
  hyphens or apostrophes (O'Brien is OBRIEN, De la Cruz is DELACRUZ).
* An English word list: /usr/share/dict/american-english from the Debian
  package `wamerican` (SCOWL-derived "size 50" American English list, under
  the SCOWL copyright: permissive, but the notices must travel with copies,
  so README.md gets /usr/share/doc/wamerican/copyright verbatim); install
  with `apt-get install -y wamerican`. It has no frequencies. Only entries that
  are all lower-case ASCII letters count as English words, so proper nouns
  ("June", "Smith"), possessives ("cat's") and accented words are ignored.
* The hand-written supplements and word lists below.

Outputs (in --out)
------------------
* first.txt      Given names: every female and male census first name, plus
                 FIRST_SUPPLEMENT, folded to upper-case ASCII.
* last.txt       Surnames: census surnames down to cumulative frequency
                 LAST_CUMFREQ_CUT (trimmed to a whole frequency tier, see
                 census_surnames()), plus LAST_SUPPLEMENT.
* ambiguous.txt  Names from first.txt or last.txt that are also ordinary
                 words: every name whose lower-case form is an English word in
                 the word list, plus the names among AMBIGUOUS_EXTRA
                 (software/ops/log words, calendar words, ...), minus
                 NOT_AMBIGUOUS (very common given names whose word sense is
                 rare: JOHN, MARIA, PETER). Always a subset of first.txt +
                 last.txt.
* english.txt    Lower-case English words from the word list that are NOT in
                 first.txt or last.txt (so disjoint from ambiguous.txt): only
                 a-z, length ENGLISH_MIN_LEN..ENGLISH_MAX_LEN, at most
                 ENGLISH_CAP words (the list has no frequencies, so if the cap
                 is hit the longest words go first, ties alphabetical).

* README.md      What the files are, cut-offs, counts, how to regenerate, and
                 the word list's copyright notice (verbatim).

Every .txt file starts with a few `#` comment lines; all other lines are one entry
each, sorted (byte order), no duplicates, no blank lines.

Folding: supplement names are written in their usual spelling (Nguyễn,
Müller, Amélie, Ji-ho) and folded with gen_fold_table.fold_text (the same
table the engine gets), then everything but A-Z is removed (Ji-ho -> JIHO,
Al-Masri -> ALMASRI, De la Cruz -> DELACRUZ), following the census convention.
German names with ä/ö/ü/ß in the German sections are also added in their
ae/oe/ue/ss transliteration (Müller -> MULLER and MUELLER).
"""

import argparse
import os
import re
import sys

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fold_table import fold_text  # noqa: E402

# ---------------------------------------------------------------------------
# Cut-offs
# ---------------------------------------------------------------------------

# Surnames: keep census surnames whose cumulative frequency is at most this
# percentage of the 1990 population (the census list itself covers 90.483%).
# The tail of the list is made of frequency tiers in which names are listed in
# reverse alphabetical order; a cut inside a tier would keep only the Z..M end
# of it, so the cut is moved back to the end of the last whole tier.
# 80.75 keeps ranks 1..26,893 (cumfreq 80.721%, about 89% of the population
# the census list covers); the rarest kept tier has about 0.00033% of the
# population per name (1 in 300,000, some 800 people in 1990).
LAST_CUMFREQ_CUT = 80.75

ENGLISH_MIN_LEN = 3
ENGLISH_MAX_LEN = 12
ENGLISH_CAP = 60000

DEFAULT_CENSUS = os.path.join("..", "shared", "data", "census-1990-names")
DEFAULT_OUT = os.path.join("rules", "hipaa", "names")
DEFAULT_WORDS = ["/usr/share/dict/american-english", "/usr/share/dict/words"]
DEFAULT_WORDS_LICENSE = "/usr/share/doc/wamerican/copyright"
US_POP_1990 = 248_709_873  # 1990 census resident population

# ---------------------------------------------------------------------------
# Supplement: given names the 1990 list under-represents or lacks.
# Written in their usual spelling; folded to A-Z (see module doc).
# Names already in the census lists are harmless duplicates.
# ---------------------------------------------------------------------------

FIRST_SUPPLEMENT = {
    # Spanish / Latin American
    "spanish": """
        José Luis Juan Jesús Guadalupe Alejandro Ximena Jimena María Sofía
        Valentina Camila Isabella Valeria Mariana Daniela Gabriela Natalia
        Lucía Paula Fernanda Renata Regina Alejandra Guillermo Francisco Javier
        Joaquín Santiago Mateo Matías Sebastián Diego Emiliano Iker Rodrigo
        Andrés Ramón Raúl Rubén Sergio Eduardo Ernesto Gerardo Rogelio Arturo
        Héctor Ignacio Gustavo Adrián Álvaro Marisol Yesenia Araceli Itzel
        Citlali Xóchitl Maricela Rocío Consuelo Inés Ángel Ángela Nayeli Yareli
        Catalina Agustín Benicio Efraín Heriberto Wilfredo Yadira Esmeralda
        Anahí Belén Begoña Iñaki Íñigo Nuria Montserrat Pilar Rosario
        Concepción Milagros Socorro Remedios Graciela Beatriz Leticia Josefina
        Yolanda Maite Ainhoa Aitana Martina Lorenzo Bautista Thiago
    """,
    # Portuguese / Brazilian
    "portuguese": """
        João Gonçalo Luíza Vinícius Caio Rafaela Thaís Sebastião Conceição
        Leandro Rodrigues Fabíola Anderson Wellington
    """,
    # Vietnamese given and middle names (Thị / Văn are the usual middle names)
    "vietnamese": """
        Anh Minh Thanh Linh Hương Tuấn Đức Hoa Trang Thị Văn Hùng Dũng Hải Hà
        Hiếu Hiền Hằng Hạnh Hòa Hoàng Huy Khánh Khoa Lan Long Mai My Nam Ngọc
        Nhung Nhi Phong Phúc Phương Quang Quân Quỳnh Sơn Tâm Thảo Thắng Thủy
        Trung Tùng Tú Tiến Toàn Trí Uyên Việt Vinh Vy Xuân Yến Bảo Châu Cường
        Duy Đạt Giang Hậu Kiên Loan Lộc Nga Nguyệt Oanh Phượng Tài Thu Thúy
        Trâm Vân Hưng Hiệp Khang Lợi Nghĩa Nhân Thịnh Diễm Hân Ngân Thư Tuyết
    """,
    # South Asian (Indian, Pakistani, Bangladeshi, Sri Lankan, Punjabi)
    "south_asian": """
        Priya Rahul Anjali Arjun Deepak Sanjay Lakshmi Ravi Aarav Aditya Ajay
        Amit Anil Anita Ankit Arun Ashok Deepa Divya Ganesh Gita Geeta Harish
        Indira Kavita Krishna Lalita Manoj Meena Mohan Nikhil Neha Pooja
        Pradeep Prakash Rajesh Rajiv Ramesh Rohit Sandeep Sanjeev Sunita Suresh
        Swati Vijay Vikram Vivek Yash Shreya Aishwarya Ananya Ishaan Kiran
        Madhu Nandini Parvati Radha Sita Shankar Srinivas Venkat Gurpreet
        Harpreet Manpreet Jaspreet Simran Navdeep Rupinder Farhan Imran Tanvir
        Nusrat Rashmi Sneha Aditi Kamala Meera Sushma Rakesh Sunil Vinod
        Sudhir Naveen Praveen Girish Mahesh Dinesh Lalit Pranav Vihaan Saanvi
        Diya Riya Anusha Bhavna Hema Usha Jyoti Sangeeta Shilpa Preeti
    """,
    # Chinese (Mandarin pinyin, Cantonese and Taiwanese romanisations)
    "chinese": """
        Wei Jing Ming Xiao Yan Hui Fang Lei Jun Hao Xin Qiang Jie Ying Mei
        Yong Tao Chao Xiaoming Zhiwei Yifan Jiahui Xinyi Yuxuan Zihan Haoran
        Qing Ling Zhen Xiu Yun Jian Ping Hua Bin Kai Peng Dan Na Lihua Xiuying
        Guiying Jianhua Wing Siu Kwan Kwok Chun Mun Shu Zhi Yu Yi Li
    """,
    # Korean (two-syllable names written joined: Ji-ho -> JIHO)
    "korean": """
        Ji-ho Seo Min-jun Seo-jun Do-yun Ye-jun Si-woo Ha-jun Ji-woo Seo-yeon
        Seo-yun Ha-yun Min-seo Ji-young Soo-jin Soo-young Eun-ji Hye-jin
        Min-ji Yu-na Ji-soo Ji-min Hyun Jae Eun Hye Soo Seung Kyung Sang Joon
        Hoon Sung-min Jin-woo Hyun-woo Ji-hoon Dong-hyun Young-ho Mi-kyung
        Eun-young Sun-hee Jung-hee Myung Chul Jun-ho
    """,
    # Japanese
    "japanese": """
        Hiroshi Takashi Yuki Kenji Akiko Yoko Haruto Sakura Yui Kaito Sota
        Hina Takeshi Naoko Keiko Satoshi Kazuo Yumi
    """,
    # Arabic (and Persian / Turkish names common among Arabic-speaking
    # and Muslim patients)
    "arabic": """
        Mohammed Muhammad Mohamed Mohammad Ahmed Ahmad Fatima Fatimah Omar
        Aisha Ali Hassan Hussein Hussain Ibrahim Yusuf Youssef Khalid Khaled
        Mustafa Mahmoud Abdullah Abdul Abdel Tariq Karim Samir Nabil Walid
        Rashid Hamza Bilal Zaid Ziad Amir Amira Layla Leila Noor Nour Mariam
        Maryam Yasmin Yasmine Zainab Zeinab Khadija Huda Hana Rania Salma
        Samira Nadia Farah Lina Dalia Rana Reem Ayesha Ayman Osama Jamal
        Faisal Majid Nasser Saleh Salim Jamila Abdulrahman Abdelrahman
        Mehmet Emre Ayşe Reza Mehdi Dariush Parisa Shirin
    """,
    # French (and Québécois)
    "french": """
        Jean Pierre Mathieu Amélie Émilie François Françoise Étienne Hélène
        Benoît Sébastien Stéphane Stéphanie Jérôme Thierry Olivier Laurent
        Guillaume Nicolas Julien Antoine Clément Baptiste Théo Léa Chloé
        Camille Manon Océane Aurélie Céline Mélanie Sylvie Véronique Geneviève
        Josée Anaïs Maëlle Noémie Loïc Hervé Gaël Yannick Mathilde Margaux
        Gaëlle Léon Raphaël Rémi Cédric
    """,
    # German (umlaut names also get their ae/oe/ue spelling)
    "german": """
        Jürgen Lukas Sabine Jörg Günter Günther Dieter Klaus Uwe Horst
        Wolfgang Helmut Manfred Rüdiger Stefan Tobias Matthias Florian
        Maximilian Jonas Niklas Björn Sören Ute Birgit Jutta Heike Anke Silke
        Katrin Kerstin Dörte Gisela Annegret Liesel Jannik Moritz Jörn Jens
        Lutz Hannelore Ingrid Brigitte Gudrun Wiebke Käthe Bärbel
    """,
    # African (Nigerian, Ghanaian, Somali, Ethiopian, Kenyan, Southern African)
    "african": """
        Chinedu Oluwaseun Kwame Kofi Kwaku Kwabena Yaw Ama Akosua Abena Efua
        Adwoa Chidi Chima Chiamaka Chukwuemeka Emeka Ngozi Nnamdi Obinna
        Ifeanyi Uchenna Adaeze Adebayo Ayodele Babatunde Olumide Folake
        Funmilayo Temitope Tunde Yetunde Femi Bukola Damilola Abimbola Olamide
        Segun Sade Amara Nkechi Oluchi Abdi Abdirahman Hamdi Amina Ayaan Hodan
        Tesfaye Abebe Alemayehu Haile Selam Tigist Mekdes Thabo Sipho Themba
        Nomvula Lerato Wanjiru Wanjiku Kamau Otieno Achieng Njeri Kwasi Kojo
        Esi Akua Oluwatobi Chinonso Ebere
    """,
    # Russian / Ukrainian / Polish
    "slavic": """
        Dmitri Dmitry Sergei Sergey Olga Svetlana Yuri Vladimir Igor Oksana
        Irina Tatiana Ekaterina Andrei Alexei Mikhail Nikolai Bogdan Wojciech
        Małgorzata Krzysztof Agnieszka Łukasz Katarzyna
    """,
}

# ---------------------------------------------------------------------------
# Supplement: surnames under-represented in (or below the cut of) the 1990 list.
# ---------------------------------------------------------------------------

LAST_SUPPLEMENT = {
    # Vietnamese
    "vietnamese": """
        Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương
        Lý Trương Đinh Lâm Lương Mai Tạ Trịnh Đoàn Đào Cao Lưu Hà Tô Châu
        Quách Thái Văn Diệp Triệu Kiều Tăng Lại Từ Mạc Khúc Hứa Thân Tôn
        Vương Giang Kha Lục Nghiêm Quan Ninh Phùng Ông Hàn Đàm Tống Chu Bạch
        Hầu Doãn Nghiêm Huynh Vuong Truong Luong Duong
    """,
    # South Asian
    "south_asian": """
        Patel Shah Singh Kumar Sharma Gupta Reddy Rao Iyer Iyengar Chatterjee
        Banerjee Mukherjee Chakraborty Chakrabarti Das Dasgupta Bose Ghosh Sen
        Sengupta Mehta Desai Joshi Trivedi Pandey Mishra Tiwari Dubey Shukla
        Agarwal Aggarwal Jain Bhatt Verma Yadav Chauhan Thakur Kaur Gill
        Sandhu Sidhu Dhillon Grewal Malhotra Kapoor Khanna Chopra Bhatia Sethi
        Arora Nair Menon Pillai Krishnan Subramanian Ramachandran Venkatesan
        Narayanan Raman Srinivasan Balakrishnan Chandrasekhar Natarajan Murthy
        Naidu Choudhury Chaudhary Chowdhury Rahman Hossain Akhtar Qureshi
        Siddiqui Malik Iqbal Javed Mirza Sheikh Ansari Kulkarni Deshpande
        Patil Pawar Jadhav Shinde Gandhi Parikh Thakkar Vyas Bhattacharya
        Bhattacharyya Ganguly Mitra Saha Dutta Basu Naik Hegde Shetty Kamath
        Bhandari Rajan Perera Jayasinghe Wickramasinghe Bandara Rathore
        Rajput Saxena Srivastava Chaturvedi Upadhyay Dwivedi Goswami Bhat
        Ahluwalia Bajwa Randhawa Sodhi Walia Mann Brar Cheema Virk
    """,
    # Chinese (pinyin, Cantonese, Taiwanese romanisations)
    "chinese": """
        Wang Zhang Liu Chen Li Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo
        Lin Luo Gao Zheng Liang Xie Tang Han Feng Deng Cao Peng Zeng Xiao
        Tian Dong Pan Yuan Cai Jiang Yu Du Ye Cheng Wei Su Lu Ding Ren Shen
        Yao Cui Zhong Tan Fan Qian Qiu Xiong Jin Hao Kong Bai Mao Qin Gu Lai
        Meng Wen Xue Yin Duan Lei Hou Long Shi Fu Wong Chan Cheung Leung Lau
        Ng Chow Tsang Yip Kwok Tse Mak Fung Hui Yeung Tam Chiu Kwan Siu Choy
        Tsui Chung Fong Szeto Ngai Hsu Tsai Chang Chou Hsieh Kuo Tseng Chien
        Hsiao Hsiung Chuang Chiang Liao Kao Teo Goh Tay Ong Lim Koh
    """,
    # Korean (common romanisations of the same surname are all listed)
    "korean": """
        Kim Lee Yi Rhee Park Pak Bak Choi Choe Jung Jeong Chung Kang Cho Jo
        Yoon Yun Jang Chang Lim Im Han Oh Seo Suh Shin Sin Kwon Hwang Ahn An
        Song Yoo Ryu Yu Hong Jeon Jun Chun Ko Moon Mun Yang Son Sohn Bae Baek
        Paek Heo Hur Nam Sim Shim Noh Roh Ha Kwak Sung Seong Cha Joo Ju Woo
        Koo Gu Min Jin Na Ji Eom Um Chae Won Byun Byeon Yeo Chu Bang Pyo Wi
    """,
    # Japanese
    "japanese": """
        Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi
        Kato Yoshida Yamada Sasaki Yamaguchi Matsumoto Inoue Kimura Hayashi
        Shimizu Yamazaki Mori Abe Ikeda Hashimoto Ishikawa Ogawa Okada
    """,
    # Spanish: compound and particle surnames, written joined as the census
    # does (De la Cruz -> DELACRUZ); the census already has the common simple
    # ones (Hernandez, Garcia, ...). Accented spellings fold to the census form.
    "spanish": """
        De-la-Cruz De-León De-los-Santos De-la-Rosa De-la-Garza De-la-Torre
        Del-Valle De-la-Fuente De-la-O De-la-Paz Del-Río Del-Toro Del-Castillo
        De-Jesús De-los-Reyes De-la-Vega Del-Ángel De-Anda De-Luna De-la-Peña
        Del-Real De-la-Hoya De-la-Cerda De-la-Riva De-los-Ríos Del-Campo
        Del-Moral Del-Pino Del-Rosario Del-Carmen Del-Pilar San-Miguel
        San-Juan San-Martín San-Román Santa-Cruz Santa-Ana Santa-María
        Villa-Real Montes-de-Oca Ponce-de-León Pérez-de-León Ruiz-de-Velasco
        Fernández-de-Córdoba Muñoz Núñez Peña Ibáñez Gómez Martínez
        Hernández González Rodríguez Sánchez Pérez López Fernández Díaz
        Álvarez Jiménez Ramírez Vásquez Velázquez Domínguez Suárez Benítez
        Echeverría Etxeberria Zúñiga Quiñones Ordóñez Cortés Chávez Gutiérrez
        Márquez Méndez Nuñez Báez Cepeda Echevarría Goicoechea Urrutia
        Aguirre Iturralde Olmedo Villaseñor Treviño Montaño Carreño
    """,
    # Portuguese / Brazilian
    "portuguese": """
        Gonçalves Conceição Magalhães Araújo Assunção Guimarães Simões
        Fonseca Loureiro Sebastião Nascimento Damasceno Figueiredo Brandão
        Da-Silva Dos-Santos Da-Costa De-Souza De-Oliveira
    """,
    # Filipino (Tagalog / Visayan origin)
    "filipino": """
        Dela-Cruz Manalo Dimaculangan Pangilinan Macapagal Magbanua Dizon
        Lacson Macaraeg Dimaano Bautista Tolentino Villanueva Mangubat
    """,
    # Arabic (Al-/El- prefixes joined: Al-Masri -> ALMASRI)
    "arabic": """
        Mohammed Mohamed Muhammad Mohammad Ahmed Ahmad Ali Khan Hussain
        Hussein Hassan Hasan Ibrahim Abdullah Abdallah Mahmoud Mustafa Mostafa
        Saleh Salem Khalil Haddad Nasser Nassar Mansour Youssef Yousef Aziz
        Hamdan Hamid Rahman Rashid Saeed Said Karim Kareem Farah Awad Khoury
        Sayed Elsayed El-Sayed Abdelrahman Abdelaziz Ismail Osman Othman
        Suleiman Sulaiman Darwish Shalaby Habib Bakr Jaber Jabbar Qasim Kassem
        Zaki Najjar Tamimi Masri Al-Masri Khatib Al-Khatib Alam Abbas Abboud
        Aboud Nasr Fawzi Barakat Khalifa Amin El-Amin Hijazi Al-Hassan
        Al-Rashid Al-Ahmad Al-Sayed Al-Amin Hamdi Shaheen Shahin Qureshi
        Yilmaz Kaya Demir Şahin Çelik Öztürk Aydın Hosseini Mohammadi Rezaei
        Ahmadi Karimi Hashemi
    """,
    # African
    "african": """
        Okafor Okonkwo Adeyemi Mensah Okeke Nwosu Eze Obi Okoro Okoye Nwachukwu
        Chukwu Onyeka Adebayo Adeleke Ogunleye Olawale Oladipo Afolabi Akinola
        Balogun Bello Abubakar Musa Danjuma Boateng Asante Owusu Osei Appiah
        Agyeman Ofori Amoah Acheampong Darko Addo Kamau Otieno Odhiambo
        Kariuki Mwangi Njoroge Ochieng Omondi Kiplagat Mutua Tesfaye Bekele
        Haile Tadesse Girma Alemu Gebremedhin Abdi Warsame Jama Diallo Traoré
        Keita Coulibaly Touré Koné Camara Diop Ndiaye Ndlovu Dlamini Nkosi
        Khumalo Mokoena Banda Phiri Mwale Tshabalala Oyelaran Ogunbanjo
        Adewale Olatunji Onyango Wanjiru Gebre Kebede Mohamud Egal Ugwu
        Anyanwu Nnaji Ezeh Uzor Ibe Obiora Okafor Iwu Achebe
    """,
    # French (and Québécois / Cajun)
    "french": """
        Lefèvre Lefebvre Guérin Gérard Noël Rivière Prévost Carré Rémy Benoît
        Dubois Durand Moreau Fournier Girard Mercier Dupont Lambert Bonnet
        Rousseau Roussel Perrin Gauthier Chevalier Lemaire Duval Marchand
        Dufour Blanchard Leclerc Lemoine Lacroix Dupuis Le-Gall Le-Roux
        Deschamps Charpentier Hébert Bélanger Gagnon Côté Bouchard Tremblay
        Pelletier Lévesque Bergeron Leblanc Thibodeaux Boudreaux Fontenot
        Guidry Ménard Béland Thériault Giroux Lévêque Bérubé Fréchette
        Desrosiers Beaulieu Béliveau
    """,
    # German (umlaut names also get their ae/oe/ue spelling: MULLER, MUELLER)
    "german": """
        Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz
        Hoffmann Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann
        Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner
        Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann
        König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß
        Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler
        Roth Beck Lorenz Baumann Franke Albrecht Schuster Ludwig Böhm Winter
        Kraus Schumacher Krämer Vogt Stein Jäger Sommer Groß Seidel Heinrich
        Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kühn Pohl Engel
        Horn Busch Bergmann Voigt Sauer Arnold Wolff Pfeiffer Dürr Förster
        Gärtner Lübke Mühlbauer Jürgens
    """,
    # Russian / Ukrainian / Polish / Balkan
    "slavic": """
        Ivanov Ivanova Smirnov Smirnova Kuznetsov Popov Petrov Petrova Sokolov
        Volkov Kovalenko Shevchenko Bondarenko Melnyk Kovalchuk Nowak
        Wiśniewski Wójcik Kamiński Lewandowski Zieliński Szymański Dąbrowski
        Kozłowski Jankowski Mazur Petrović Jovanović Nikolić Horvat Kovačević
    """,
}

# Sections whose umlaut spellings also get the ae/oe/ue/ss transliteration.
UMLAUT_SECTIONS = {"german"}

# ---------------------------------------------------------------------------
# Ambiguous: extra words (beyond the English word list) that are common in
# ordinary text or in software/ops logs. Only the ones that are actually in
# first.txt or last.txt are written to ambiguous.txt; the rest document what
# was checked. Upper-case.
# ---------------------------------------------------------------------------

AMBIGUOUS_EXTRA = {
    # Calendar words: capitalised in the word list, so the lower-case rule
    # misses them (JUNE, APRIL, AUGUST, JANUARY, SUNDAY are census names).
    "calendar": """
        JANUARY FEBRUARY MARCH APRIL MAY JUNE JULY AUGUST SEPTEMBER OCTOBER
        NOVEMBER DECEMBER MONDAY TUESDAY WEDNESDAY THURSDAY FRIDAY SATURDAY
        SUNDAY EASTER CHRISTMAS
    """,
    # Nationality, language and religion adjectives that are also surnames
    # or given names (capitalised in the word list).
    "proper_words": """
        ENGLISH FRENCH GERMAN IRISH WELSH SCOTCH DUTCH CHRISTIAN CATHOLIC
        BAPTIST
    """,
    # Software / ops / cloud product names. Languages and tools that are
    # mostly seen as people's names in text (Julia, Ada, Pascal, Haskell) are
    # deliberately left out.
    "software": """
        KAFKA DOCKER JENKINS REDIS NGINX HELM ENVOY CHROME SAFARI FIREFOX
        LINUX SPRING MAVEN GRADLE NODE JAVA RUBY PERL RUST GO PYTHON CADDY
        TRAEFIK KONG CONSUL VAULT NOMAD ISTIO POD HOST SERVER CLIENT SPARK
        HIVE FLASK DJANGO RAILS REACT ANGULAR VUE EMBER MONGO POSTGRES MYSQL
        ORACLE AZURE GOOGLE APPLE AMAZON LAMBDA ALPINE UBUNTU DEBIAN CENTOS
        FEDORA GIT GITHUB GITLAB SLACK JIRA ELASTIC KIBANA LOGSTASH GRAFANA
        PROMETHEUS SENTRY DATADOG SPLUNK TERRAFORM ANSIBLE PUPPET CHEF SALT
        HADOOP CASSANDRA RABBIT CELERY FLINK AIRFLOW DAGSTER BAZEL CARGO
        TOKIO HYPER AXUM SERDE JAEGER ZIPKIN LINKERD CALICO CILIUM ETCD
        MINIKUBE KUBE ARGO HARBOR QUAY NEXUS ARTIFACT BEAM DRUID PRESTO TRINO
        DELTA ICEBERG HUDI SNOWFLAKE WINDOWS EDGE OPERA SWIFT KOTLIN SCALA
        ELIXIR ERLANG BASH ZSH FISH
        EMACS VIM NANO ATOM MERCURY APACHE TOMCAT JETTY NETTY WILDFLY
    """,
    # Log levels, HTTP methods and common log / protocol / code words.
    "log_words": """
        ERROR WARN WARNING INFO DEBUG TRACE FATAL CRITICAL NOTICE ALERT
        EMERGENCY PANIC SEVERE FINE GET POST PUT PATCH DELETE HEAD OPTIONS
        CONNECT TRUE FALSE NULL NIL NONE VOID OK FAIL FAILED PASS PENDING
        START STOP READY DONE RETRY TIMEOUT CACHE QUEUE TOKEN PATH PORT JOB
        TASK WORKER MASTER SLAVE LEADER FOLLOWER PRIMARY REPLICA SHARD BATCH
        STREAM BUCKET KEY LOCK LOG LOGGER AGENT PROXY GATEWAY ROUTER SWITCH
        BRIDGE CASE LINK BLOCK CLOUD CASH ASH BASE BRANCH BUILD CHAIN CHECK
        CLASS CODE CORE COUNT CRON DATA DEPLOY DRAIN EVENT FIELD FILE FLAG
        FLOW FORK FRAME GATE GRAPH HASH HOOK INDEX LABEL LEVEL LIST LOAD
        MAIN MAP MARK MERGE MESH MODE NAME NET NEXT NODE PAGE PEER PIPE
        POOL POST PRINT PUSH PULL RACK RANGE RATE READ RECORD RING ROOT ROUTE
        RULE RUN SCOPE SEED SHELL SLOT SPAN STACK STATE STORE TABLE TAG TEST
        THREAD TICK TIER TYPE UNIT USER VALUE VIEW WATCH WRITE ZONE RM
    """,
}

# Names whose lower-case form is in the word list only in a rare, archaic,
# slang or technical sense ("john" toilet, "maria" lunar seas, "hector" to
# bully) but that are among the most common given names: kept OUT of
# ambiguous.txt so they count as names without extra context. Keep this short;
# a name whose word sense is ordinary (MAY, WILL, MARK, ROSE, HOPE) belongs in
# ambiguous.txt.
NOT_AMBIGUOUS = """
    JOHN MARIA PETER HARRY VICTOR HECTOR DERRICK COLLEEN PATSY SALLY JIMMY
    BOBBY BILLY TONY RANDY KEN BRAD CHAD
"""

# ---------------------------------------------------------------------------

README_TEMPLATE = """\
# Name dictionaries for the PHI name detector

Generated by `scripts/derive_names.py` -- do not edit the `.txt` files or this
README by hand; change the script and regenerate:

```sh
# from the repo root, with the shared folder at ../shared
apt-get install -y wamerican      # the English word list, if missing
python3 scripts/derive_names.py --census ../shared/data/census-1990-names --out rules/hipaa/names
```

(those are the defaults, so `python3 scripts/derive_names.py` does the same).
The script is stdlib-only Python 3 and deterministic: same inputs, same bytes.

## Files

Every `.txt` file starts with a few `#` comment lines (skip them); every other
line is one entry, sorted (byte order), no duplicates, no blank lines.

| file | entries | what |
|---|---:|---|
| `first.txt` | {n_first} | given names, upper-case ASCII A-Z |
| `last.txt` | {n_last} | surnames, upper-case ASCII A-Z |
| `ambiguous.txt` | {n_amb} | names that are also ordinary or log words: a name only with context |
| `english.txt` | {n_eng} | lower-case English words that are not names |

Names are in the census convention: A-Z only, no spaces, hyphens, apostrophes
or accents (O'Brien is `OBRIEN`, De la Cruz is `DELACRUZ`, Ji-ho is `JIHO`,
Nguyễn is `NGUYEN`). Text must be folded the same way before lookup:
upper-case, diacritics folded with the table from `scripts/gen_fold_table.py`
(`scripts/fold_table.rs.txt`), and for multi-part names try the parts and the
parts joined.

## Sources

* **1990 US Census** "Frequently Occurring Surnames and First Names" (U.S.
  Census Bureau, public domain): `dist.female.first` ({n_female} names),
  `dist.male.first` ({n_male}), `dist.all.last` ({n_census_last_all} surnames), kept in
  `shared/data/census-1990-names/` (not read at run time).
* **English word list**: `{words_path}` from the Debian package
  `wamerican` (SCOWL "size 50" American English, {n_words} all-lower-case
  entries). It has no word frequencies. Only entries made of lower-case a-z
  count as English words (proper nouns such as "June" or "Smith",
  possessives and accented words are ignored). Its copyright notice is
  reproduced at the end of this file, as its licence requires; it also has to
  travel with binaries that embed `english.txt` / `ambiguous.txt`.
* **Hand-written lists** in `scripts/derive_names.py`: `FIRST_SUPPLEMENT`,
  `LAST_SUPPLEMENT`, `AMBIGUOUS_EXTRA`, `NOT_AMBIGUOUS`.

## How each file is made

### first.txt

All {n_census_first} distinct census first names (female and male lists together),
plus `FIRST_SUPPLEMENT`: {n_sup_first} given names the 1990 list under-represents
({n_sup_first_new} of them not in the census lists) -- Spanish/Latin American,
Portuguese, Vietnamese, South Asian, Chinese, Korean, Japanese, Arabic/Turkish/
Persian, French, German, African and Slavic names. The supplement is written
with accents and folded (Amélie -> `AMELIE`); German umlaut names are also
added in the ae/oe/ue spelling (Jürgen -> `JURGEN` and `JUERGEN`).

### last.txt

The census surname list has {n_census_last_all} names covering 90.483% of the 1990
population, most of them very rare. **Cut:** surnames with cumulative
frequency <= {cut}%, moved back to the end of the last whole frequency tier
(inside a tier of equal frequency the census lists names in reverse
alphabetical order, so a cut in the middle would keep only the Z..M half):
ranks 1..{last_rank}, cumulative frequency {last_cum:.3f}%. The rarest kept tier
has about {tier_freq:.5f}% of the population per name (1 in {tier_one_in:,}, some
{tier_people:,} people in the 1990 census).

Plus `LAST_SUPPLEMENT`: {n_sup_last} surnames ({n_sup_last_new} new: {n_sup_last_below} were census
surnames below the cut, {n_sup_last_absent} not in the census at all) -- Vietnamese,
South Asian, Chinese (pinyin, Cantonese, Taiwanese spellings), Korean (all
common romanisations), Japanese, Spanish compound surnames written joined
(`DELACRUZ`, `DELOSSANTOS`, `PONCEDELEON`), Portuguese, Filipino, Arabic (with
`AL`/`EL` prefixes joined: `ALMASRI`), Turkish, Persian, African, French,
German (`MULLER` and `MUELLER`) and Slavic surnames.

### ambiguous.txt

Names from `first.txt` or `last.txt` that are also ordinary words, so the
detector must not redact them in ordinary text without context (MAY, WILL,
LONG, GRANT, HOPE, WHITE, KING, ...). It is the union of

* the {n_amb_dict} names whose lower-case form is an English word in the word list;
* the names among `AMBIGUOUS_EXTRA` -- calendar words (capitalised in the word
  list: JUNE, APRIL, AUGUST, SUNDAY), nationality adjectives (FRENCH,
  ENGLISH), software/ops names and log words. Those that are names here:

  {extra_in}

minus `NOT_AMBIGUOUS`, very common given names whose dictionary sense is rare
or slang:

{not_amb}.

It is always a subset of `first.txt` + `last.txt`. Words of `AMBIGUOUS_EXTRA`
that are census surnames only below the cut (so not names here):

  {extra_cut}

### english.txt

Lower-case English words from the word list that are **not** in `first.txt`
or `last.txt` (so disjoint from `ambiguous.txt`; a word is English if it is in
either file). Only a-z, length {eng_min}..{eng_max}; the list has no frequencies, so
the size is capped at {eng_cap} words by dropping the longest first. Now
{n_eng} words of {n_eng_total} eligible{cap_note}. It lets the
engine tell "Kafka Consumer" (Consumer is an English word) from "Priya Patel".
Two-letter words (of, to, in) are not in it.
"""

LICENSE_INTRO = """
## Word list copyright

`english.txt` and `ambiguous.txt` are derived from the SCOWL-based word list
shipped by Debian's `wamerican` package. Its copyright file (`{path}`)
follows verbatim, as required by its terms.

"""


def wrap(text, width=76, indent="  "):
    out, line = [], ""
    for w in text.split():
        if line and len(line) + 1 + len(w) > width:
            out.append(line)
            line = w
        else:
            line = (line + " " + w).strip()
    if line:
        out.append(line)
    return ("\n" + indent).join(out)


def words_of(block):
    return block.split()


def fold_name(name):
    """Supplement spelling -> census form: upper-case A-Z only."""
    s = re.sub(r"[^A-Z]", "", fold_text(name))
    if not s:
        raise SystemExit("supplement name folds to nothing: %r" % name)
    return s


def umlaut_variant(name):
    """Müller -> MUELLER (German transliteration), or None if no umlaut."""
    if not re.search("[äöüÄÖÜß]", name):
        return None
    t = name
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"),
                 ("Ü", "Ue"), ("ß", "ss")):
        t = t.replace(a, b)
    return fold_name(t)


def supplement(sections):
    out = set()
    for section, block in sections.items():
        for raw in words_of(block):
            out.add(fold_name(raw))
            if section in UMLAUT_SECTIONS:
                v = umlaut_variant(raw)
                if v:
                    out.add(v)
    return out


LINE_RE = re.compile(r"^([A-Z]+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+)\s*$")


def read_census(path):
    """[(name, freq, cumfreq, rank)] in file order; strict format check."""
    rows = []
    with open(path, encoding="ascii") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            m = LINE_RE.match(line)
            if not m:
                raise SystemExit("%s:%d: unexpected line %r" % (path, n, line))
            rows.append((m.group(1), float(m.group(2)), float(m.group(3)), int(m.group(4))))
    return rows


def census_surnames(rows, cut):
    """Surnames with cumfreq <= cut, trimmed back to a whole frequency tier.

    Within a tier of equal (unrounded) frequency the census lists names in
    reverse alphabetical order, so a name that sorts after the one before it
    starts a new tier. If the name right after the cut continues the tier of
    the last kept name, drop that partial tier.
    """
    n = 0
    while n < len(rows) and rows[n][2] <= cut:
        n += 1
    if n < len(rows):
        # Walk back while the next row continues the same descending run.
        while n > 0 and rows[n][0] < rows[n - 1][0]:
            n -= 1
    return rows[:n]


def read_words(path):
    """Lower-case a-z entries of a word list, as a set."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return {w for w in (line.strip() for line in f) if re.fullmatch(r"[a-z]+", w)}


def write_list(path, header, items):
    items = sorted(items)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for h in header:
            f.write(("# " + h).rstrip() + "\n")
        for it in items:
            f.write(it + "\n")
    return len(items)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--census", default=DEFAULT_CENSUS,
                    help="folder with dist.all.last, dist.female.first, dist.male.first "
                         "(default: %(default)s)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--words", default=None,
                    help="English word list, one word per line (default: first of %s)"
                         % ", ".join(DEFAULT_WORDS))
    ap.add_argument("--words-license", default=DEFAULT_WORDS_LICENSE,
                    help="copyright file of the word list, copied verbatim into README.md "
                         "(default: %(default)s)")
    ap.add_argument("--last-cut", type=float, default=LAST_CUMFREQ_CUT,
                    help="surname cumulative-frequency cut in percent (default: %(default)s)")
    args = ap.parse_args(argv)

    words_path = args.words or next((p for p in DEFAULT_WORDS if os.path.exists(p)), None)
    if not words_path or not os.path.exists(words_path):
        raise SystemExit("no English word list found (apt-get install -y wamerican, or --words)")

    female = read_census(os.path.join(args.census, "dist.female.first"))
    male = read_census(os.path.join(args.census, "dist.male.first"))
    surnames_all = read_census(os.path.join(args.census, "dist.all.last"))
    kept = census_surnames(surnames_all, args.last_cut)
    last_rank, last_cum = kept[-1][3], kept[-1][2]
    # Per-name frequency of the last kept tier (the file rounds freq to 0.001).
    tier_start = len(kept) - 1
    while tier_start > 0 and kept[tier_start][0] < kept[tier_start - 1][0]:
        tier_start -= 1
    prev_cum = kept[tier_start - 1][2] if tier_start > 0 else 0.0
    tier_freq = (last_cum - prev_cum) / (len(kept) - tier_start)

    census_first = {r[0] for r in female} | {r[0] for r in male}
    census_last = {r[0] for r in kept}
    census_last_all = {r[0] for r in surnames_all}
    sup_first = supplement(FIRST_SUPPLEMENT)
    sup_last = supplement(LAST_SUPPLEMENT)

    first = census_first | sup_first
    last = census_last | sup_last
    names = first | last

    english_words = read_words(words_path)
    extra = set()
    for block in AMBIGUOUS_EXTRA.values():
        extra |= set(words_of(block))
    not_ambiguous = set(words_of(NOT_AMBIGUOUS))
    ambiguous = ({n for n in names if n.lower() in english_words} | (extra & names)) - not_ambiguous

    english = sorted(w for w in english_words
                     if ENGLISH_MIN_LEN <= len(w) <= ENGLISH_MAX_LEN and w.upper() not in names)
    english_total = len(english)
    if len(english) > ENGLISH_CAP:
        english = sorted(sorted(english, key=lambda w: (len(w), w))[:ENGLISH_CAP])

    os.makedirs(args.out, exist_ok=True)
    src = "Source: 1990 US Census name lists (U.S. Census Bureau, public domain)."
    regen = ("Generated by scripts/derive_names.py -- do not edit; "
             "see README.md in this folder.")
    n_first = write_list(os.path.join(args.out, "first.txt"), [
        "Given names, upper-case ASCII A-Z, one per line, sorted. " + regen,
        src,
        "All %d distinct census female+male first names plus %d supplement names"
        % (len(census_first), len(sup_first)),
        "(%d of them new) in scripts/derive_names.py FIRST_SUPPLEMENT."
        % len(sup_first - census_first),
    ], first)
    n_last = write_list(os.path.join(args.out, "last.txt"), [
        "Surnames, upper-case ASCII A-Z, one per line, sorted. " + regen,
        src,
        "Census surnames with cumulative frequency <= %.3f%% (cut %s%%, trimmed to a whole"
        % (last_cum, args.last_cut),
        "frequency tier): ranks 1..%d of %d. Plus %d supplement names (%d new)"
        % (last_rank, len(surnames_all), len(sup_last), len(sup_last - census_last)),
        "in scripts/derive_names.py LAST_SUPPLEMENT.",
    ], last)
    n_amb = write_list(os.path.join(args.out, "ambiguous.txt"), [
        "Names (from first.txt or last.txt) that are also ordinary words: never a",
        "name on their own, only with context. Upper-case. " + regen,
        "Names whose lower-case form is in %s (%d), plus the names"
        % (os.path.basename(words_path), len({n for n in names if n.lower() in english_words})),
        "among AMBIGUOUS_EXTRA in scripts/derive_names.py (calendar, software, log words),",
        "minus NOT_AMBIGUOUS there (common given names with a rare word sense: JOHN, MARIA).",
    ], ambiguous)
    n_eng = write_list(os.path.join(args.out, "english.txt"), [
        "Common English words, lower-case a-z, length %d-%d, that are NOT in first.txt"
        % (ENGLISH_MIN_LEN, ENGLISH_MAX_LEN),
        "or last.txt (disjoint from ambiguous.txt). " + regen,
        "Source: %s (Debian package wamerican, SCOWL-derived, no frequencies);"
        % words_path,
        "all-lower-case entries only; %d words%s."
        % (len(english), "" if english_total <= ENGLISH_CAP
           else " (capped from %d, longest dropped)" % english_total),
    ], english)

    extra_in = sorted(extra & names)
    extra_cut = sorted((extra & census_last_all) - names)

    license_text = None
    if args.words_license and os.path.exists(args.words_license):
        with open(args.words_license, encoding="utf-8") as f:
            license_text = f.read()
    readme = README_TEMPLATE.format(
        n_female=len(female), n_male=len(male), n_census_first=len(census_first),
        n_sup_first=len(sup_first), n_sup_first_new=len(sup_first - census_first),
        n_first=n_first, n_census_last_all=len(surnames_all), cut=args.last_cut,
        last_cum=last_cum, last_rank=last_rank, n_sup_last=len(sup_last),
        n_sup_last_new=len(sup_last - census_last),
        n_sup_last_below=len((sup_last - census_last) & census_last_all),
        n_sup_last_absent=len(sup_last - census_last_all), n_last=n_last,
        n_amb=n_amb, n_amb_dict=len({n for n in names if n.lower() in english_words}),
        n_eng=n_eng, n_eng_total=english_total, eng_min=ENGLISH_MIN_LEN,
        eng_max=ENGLISH_MAX_LEN, eng_cap=ENGLISH_CAP, words_path=words_path,
        n_words=len(english_words),
        extra_in=wrap(" ".join(extra_in)), extra_cut=wrap(" ".join(extra_cut)),
        not_amb=wrap(" ".join(sorted(not_ambiguous)), indent=""),
        cap_note=" (the cap is not reached)" if english_total <= ENGLISH_CAP else "",
        tier_freq=tier_freq, tier_one_in=int(round(100.0 / tier_freq, -4)),
        tier_people=int(round(US_POP_1990 * tier_freq / 100.0, -1)),
    )
    if license_text:
        readme += LICENSE_INTRO.format(path=args.words_license) + "```text\n" + license_text
        readme += ("" if license_text.endswith("\n") else "\n") + "```\n"
    else:
        readme += ("\n## Word list copyright\n\nThe word list's copyright file was not found "
                   "(--words-license); add its notice here.\n")
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(readme)
    print("census first names: %d female + %d male = %d distinct"
          % (len(female), len(male), len(census_first)))
    print("first supplement: %d names, %d new" % (len(sup_first), len(sup_first - census_first)))
    print("surnames: kept ranks 1..%d of %d (cumfreq %.3f%%, cut %s%%)"
          % (last_rank, len(surnames_all), last_cum, args.last_cut))
    print("last supplement: %d names, %d new (%d below the census cut, %d not in census)"
          % (len(sup_last), len(sup_last - census_last),
             len((sup_last - census_last) & census_last_all), len(sup_last - census_last_all)))
    print("first.txt %d, last.txt %d, ambiguous.txt %d, english.txt %d (of %d)"
          % (n_first, n_last, n_amb, n_eng, english_total))
    print("word list: %s (%d lower-case words)" % (words_path, len(english_words)))
    print("AMBIGUOUS_EXTRA words that are names: %s" % " ".join(extra_in))
    print("AMBIGUOUS_EXTRA words that are census surnames below the cut: %s" % " ".join(extra_cut))
    return 0


if __name__ == "__main__":
    sys.exit(main())
